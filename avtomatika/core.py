"""The engine core: create jobs and run steps (apply a handler's action to a job), independent of Celery.

A step message carries `(job_id, seq)`. A message whose `seq` is not the job's current one is a stale
duplicate and is dropped. Otherwise the handler runs and its result is committed with a compare-and-set on
`seq`, so a redelivered message after a crash re-runs the handler (at-least-once execution) but can never
apply a state change twice (exactly-once state change). Consecutive `transition_to` steps run in one burst
and are committed together, bounded by `STEP_BURST` steps and `BURST_COMMIT_SECONDS` of handler time.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .aio import run_coroutine
from .blueprint import StateMachineBlueprint
from .config import Config
from .context import ActionFactory, ClientConfig, JobContext
from .errors import HandlerError, JobNotFound
from .hooks import Hooks
from .job import Job, JobStatus, new_job, set_status
from .storage.base import StorageBackend, dumps, loads

logger = logging.getLogger(__name__)

RUNNABLE = frozenset({JobStatus.PENDING, JobStatus.RUNNING, JobStatus.AWAITING_RETRY})
BURST_COMMIT_SECONDS = 0.05


class StepScheduler(Protocol):
    """Sends `avtomatika.step(job_id, seq)` after `delay` seconds (Celery in production)."""

    def schedule_step(
        self, job_id: str, seq: int, delay: float = 0.0, *, blueprint: str = "", state: str = ""
    ) -> None:
        """Schedule one step message."""


@dataclass
class InlineScheduler:
    """A scheduler that queues steps in memory; `drain` runs them in this thread (tests of pure logic)."""

    pending: list[tuple[str, int, float]] = field(default_factory=list)

    def schedule_step(
        self, job_id: str, seq: int, delay: float = 0.0, *, blueprint: str = "", state: str = ""
    ) -> None:
        self.pending.append((job_id, seq, delay))

    def drain(self, run_step: Callable[[str, int], str], limit: int = 10_000) -> int:
        """Run queued steps (ignoring delays) until none is left; returns how many ran."""
        count = 0
        while self.pending and count < limit:
            job_id, seq, _ = self.pending.pop(0)
            run_step(job_id, seq)
            count += 1
        return count


@dataclass
class _Move:
    kind: str  # "continue" (run the next state), "retry" (after delay), "stop" (waiting or terminal)
    delay: float = 0.0


_CONTINUE = _Move("continue")
_STOP = _Move("stop")


class OrchestratorCore:
    """Creates jobs and runs their steps against a storage backend and a step scheduler."""

    def __init__(
        self,
        storage: StorageBackend,
        config: Config,
        blueprints: dict[str, StateMachineBlueprint],
        scheduler: StepScheduler,
        hooks: Hooks,
    ) -> None:
        self.storage = storage
        self.config = config
        self.blueprints = blueprints
        self.scheduler = scheduler
        self.hooks = hooks

    # -- jobs -----------------------------------------------------------------------------------------

    def create_job(
        self,
        blueprint_name: str,
        initial_data: dict[str, Any],
        client: ClientConfig,
        *,
        idempotency_key: str | None = None,
        webhook_url: str | None = None,
        dispatch_timeout: float | None = None,
        result_timeout: float | None = None,
    ) -> tuple[str, bool]:
        """Store a new job and schedule its first step; returns `(job_id, created)`.

        With an idempotency key a repeated request of the same client returns the first job's id and
        `created=False`.
        """
        blueprint = self.blueprints.get(blueprint_name)
        if blueprint is None:
            raise JobNotFound(f"unknown blueprint {blueprint_name!r}", blueprint=blueprint_name)
        job = new_job(
            blueprint_name,
            blueprint.start_state,
            initial_data,
            client.client_id,
            webhook_url=webhook_url,
            dispatch_timeout=dispatch_timeout,
            result_timeout=result_timeout,
        )
        job["client"] = {"client_id": client.client_id, "plan": client.plan, "params": client.params}
        scoped_key = None
        if idempotency_key is not None:
            scoped_key = hashlib.sha256(f"{client.client_id}\0{idempotency_key}".encode()).hexdigest()
        job_id = self.storage.create_job(
            job,
            idempotency_key=scoped_key,
            idempotency_ttl=self.config.IDEMPOTENCY_TTL_SECONDS,
            watch_until=job["created_at"] + self.config.STEP_STALL_SECONDS,
        )
        if job_id != job["id"]:
            return job_id, False
        self.hooks.job_created(job)
        self.scheduler.schedule_step(job_id, 0, blueprint=blueprint_name, state=job["current_state"])
        return job_id, True

    def get_job(self, job_id: str) -> Job | None:
        """The stored job record, or None."""
        return self.storage.get_job(job_id)

    # -- steps ----------------------------------------------------------------------------------------

    def run_step(self, job_id: str, seq: int) -> str:
        """Run the step `(job_id, seq)`; returns what happened: missing, stale, idle, conflict or committed."""
        job = self.storage.get_job(job_id)
        if job is None:
            return "missing"
        if job["seq"] != seq:
            logger.debug("dropping stale step %s seq=%s (job is at %s)", job_id, seq, job["seq"])
            return "stale"
        if JobStatus(job["status"]) not in RUNNABLE:
            return "idle"
        blueprint = self.blueprints.get(job["blueprint_name"])
        events: list[tuple[str, tuple[Any, ...]]] = []
        started = time.monotonic()
        steps = 0
        while True:
            if blueprint is None:
                move = self._fail(
                    job, f"blueprint {job['blueprint_name']!r} is not registered on this engine"
                )
            else:
                move = self._advance(job, blueprint, events)
            steps += 1
            if (
                move.kind == "continue"
                and steps < self.config.STEP_BURST
                and time.monotonic() - started < BURST_COMMIT_SECONDS
            ):
                continue
            break
        status = JobStatus(job["status"])
        terminal = status.is_terminal
        retention = self.config.JOB_RETENTION_SECONDS if terminal else None
        watch_until = None
        if status in RUNNABLE:
            watch_until = time.time() + move.delay + self.config.STEP_STALL_SECONDS
        if not self.storage.commit_job(job, seq, retention_seconds=retention, watch_until=watch_until):
            logger.info("step %s seq=%s lost a race; its result is discarded", job_id, seq)
            return "conflict"
        for name, args in events:
            getattr(self.hooks, name)(job, *args)
        if terminal:
            self.hooks.job_ended(job)
        elif move.kind in ("continue", "retry"):
            self.scheduler.schedule_step(
                job_id, job["seq"], move.delay, blueprint=job["blueprint_name"], state=job["current_state"]
            )
        return "committed"

    def recover_stalled(self, now: float | None = None, limit: int = 500) -> int:
        """Re-send the step of runnable jobs that made no progress for `STEP_STALL_SECONDS`.

        Closes the crash windows between a commit and the next step message (and between storing a new
        job and its first message). A duplicate this creates is dropped by the `seq` guard.
        """
        moment = time.time() if now is None else now
        count = 0
        for job_id in self.storage.stalled_jobs(moment, limit):
            job = self.storage.get_job(job_id)
            if job is None or JobStatus(job["status"]) not in RUNNABLE:
                self.storage.watch_job(job_id, None)
                continue
            self.storage.watch_job(job_id, moment + self.config.STEP_STALL_SECONDS)
            logger.warning("job %s made no progress at seq=%s: re-sending its step", job_id, job["seq"])
            self.scheduler.schedule_step(
                job_id, job["seq"], blueprint=job["blueprint_name"], state=job["current_state"]
            )
            count += 1
        return count

    def _advance(
        self, job: Job, blueprint: StateMachineBlueprint, events: list[tuple[str, tuple[Any, ...]]]
    ) -> _Move:
        """Run the handler of the job's current state and apply its action to `job` in memory."""
        if job["status"] != JobStatus.RUNNING.value:
            set_status(job, JobStatus.RUNNING)
        state = job["current_state"]
        began = time.monotonic()
        snapshot = dumps(job["state_history"])
        try:
            spec = blueprint.find_handler(state, job["initial_data"], job["state_history"])
            if spec is None:
                return self._end(job, state)
            actions = ActionFactory(job["id"])
            context = self._context(job, blueprint, actions)
            kwargs = spec.arguments(context)
            if spec.is_async:
                run_coroutine(spec.func(**kwargs))
            else:
                spec.func(**kwargs)
            dumps(context.state_history)  # a handler that stored something unserialisable has failed
        except Exception as exc:
            job["state_history"] = loads(snapshot)
            return self._handler_failed(job, state, exc, events)
        events.append(("state_finished", (state, time.monotonic() - began)))
        job["state_history"] = context.state_history
        if job["retry_count"]:
            job["error_message"] = None
        action = actions.action
        if action is None:
            if blueprint.is_end_state(state):
                return self._end(job, state)
            return self._fail(
                job,
                f"state {state!r}: the handler set no action; only end states (is_end=True) may finish "
                "without calling actions.transition_to(...) or another action",
            )
        if action["kind"] == "transition":
            target = action["state"]
            if not blueprint.has_state(target):
                return self._fail(job, f"state {state!r}: transition_to({target!r}) names an unknown state")
            if job["transitions"] >= self.config.MAX_TRANSITIONS_PER_JOB:
                return self._fail(
                    job, f"MAX_TRANSITIONS_PER_JOB ({self.config.MAX_TRANSITIONS_PER_JOB}) reached at state {state!r}"
                )
            job["current_state"] = target
            job["transitions"] += 1
            job["retry_count"] = 0
            return _CONTINUE
        return self._fail(
            job, f"state {state!r}: action {action['kind']} is not supported by this engine yet"
        )

    def _context(self, job: Job, blueprint: StateMachineBlueprint, actions: ActionFactory) -> JobContext:
        client = job.get("client") or {}
        return JobContext(
            job_id=job["id"],
            current_state=job["current_state"],
            initial_data=job["initial_data"],
            state_history=job["state_history"],
            actions=actions,
            client=ClientConfig(
                client_id=str(client.get("client_id", job.get("client_id", ""))),
                plan=client.get("plan", "default"),
                params=client.get("params", {}),
            ),
            data_stores=blueprint.data_stores,
            aggregation_results=job.get("aggregation_results"),
            tracing_context=job.get("tracing_context") or {},
        )

    def _end(self, job: Job, state: str) -> _Move:
        set_status(job, JobStatus.FAILED if state == "failed" else JobStatus.FINISHED)
        return _STOP

    def _fail(self, job: Job, message: str) -> _Move:
        job["error_message"] = message
        set_status(job, JobStatus.FAILED)
        return _STOP

    def _handler_failed(
        self, job: Job, state: str, exc: Exception, events: list[tuple[str, tuple[Any, ...]]]
    ) -> _Move:
        detail = traceback.format_exc()
        prefix = "" if isinstance(exc, HandlerError) else f"handler raised {type(exc).__name__}: "
        message = f"state {state!r}: {prefix}{exc}"
        events.append(("step_failed", (state, message, detail)))
        job["retry_count"] += 1
        job["error_message"] = message
        if job["retry_count"] > self.config.JOB_MAX_RETRIES:
            job["error_message"] = f"{message} (quarantined after {self.config.JOB_MAX_RETRIES} retries)"
            job["error_traceback"] = detail
            set_status(job, JobStatus.QUARANTINED)
            return _STOP
        set_status(job, JobStatus.AWAITING_RETRY)
        delay = self.config.JOB_RETRY_BASE_SECONDS * 2 ** (job["retry_count"] - 1)
        return _Move("retry", delay * (1 + random.random() * 0.25))
