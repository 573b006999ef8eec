"""The engine core: create jobs and run steps (apply a handler's action to a job), independent of Celery.

A step message carries `(job_id, seq)`. A message whose `seq` is not the job's current one is a stale
duplicate and is dropped. Otherwise the handler runs and its result is committed with a compare-and-set on
`seq`, so a redelivered message after a crash re-runs the handler (at-least-once execution) but can never
apply a state change twice (exactly-once state change). Consecutive `transition_to` steps run in one burst
and are committed together, bounded by `STEP_BURST` steps and `BURST_COMMIT_SECONDS` of handler time.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import random
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .aio import run_coroutine
from .blueprint import StateMachineBlueprint
from .children import child_job, child_result, child_wait, outcome_key
from .config import Config
from .context import ActionFactory, ClientConfig, JobContext
from .dispatcher import Dispatcher, new_task, next_attempt
from .errors import HandlerError, JobNotFound
from .job import Job, JobStatus, new_job, set_status
from .notifiers import ApprovalRequest, Notifier, approval_token
from .ops import CreateJob, Enqueue, GrantLease, JobChanges, NotifyEnd, PublishStep, QueueWebhook, StoreBranches
from .quotas import monthly_quota
from .storage.base import StorageBackend, dumps, loads
from .stream import (
    APPROVAL_REQUESTED,
    JOB_CREATED,
    JOB_ENDS,
    STATE_FAILED,
    STATE_FINISHED,
    STATE_STARTED,
    SUB_JOB_FINISHED,
    SUB_JOB_STARTED,
    TASK_DISPATCHED,
    EventStream,
    JobEvent,
)
from .tasks import NATIVE_WORKER, Lease, QueueEntry
from .transitions import enter_state, fail
from .waits import ApprovalWait, TaskWait, current_task, wait_of

logger = logging.getLogger(__name__)

RUNNABLE = frozenset({JobStatus.PENDING, JobStatus.RUNNING, JobStatus.AWAITING_RETRY})
BURST_COMMIT_SECONDS = 0.05
DELIVERY_COUNT_TTL = 86400.0  # a poison step's delivery count outlives any redelivery cycle
# An event decided before its commit: (kind, JobEvent fields); it becomes a `JobEvent` once the commit succeeded.
Pending = tuple[str, dict[str, Any]]


def job_event(job: Job, kind: str, **fields: Any) -> JobEvent:
    """A `JobEvent` about `job` as it is now (its status and commit counter); `state` defaults to its current one."""
    fields.setdefault("state", job.get("current_state"))
    return JobEvent(
        kind=kind, job_id=job["id"], blueprint=job["blueprint_name"], status=job["status"], seq=job["seq"], **fields
    )


def task_fields(task: dict[str, Any]) -> dict[str, Any]:
    """Event fields of a dispatched task (no params: they may be large or private)."""
    return {
        "task_id": task["task_id"],
        "attempt": int(task.get("attempt", 1)),
        "details": {"task_type": task["task_type"], "priority": task.get("priority", 0.0)},
    }


class StepScheduler(Protocol):
    """Sends `avtomatika.step(job_id, seq)` after `delay` seconds (Celery in production)."""

    def schedule_step(
        self, job_id: str, seq: int, delay: float = 0.0, *, blueprint: str = "", state: str = "", resent: bool = False
    ) -> None:
        """Schedule one step message; `resent`: the sweep sends a stalled step again (its run counts as a
        redelivery for poison-step detection)."""

    def run_native_task(self, job_id: str, task_id: str, task_type: str, params: dict[str, Any]) -> None:
        """Send a native task type's Celery task (queue `avtomatika.tasks.<type>`)."""

    def step_message(self, job_id: str, seq: int, *, blueprint: str = "", state: str = "") -> tuple[str, str] | None:
        """(list key, message) of an immediate step for storage to push atomically with a commit, or None
        when the step must be scheduled after the commit instead."""

    def native_message(
        self, job_id: str, task_id: str, task_type: str, params: dict[str, Any]
    ) -> tuple[str, str] | None:
        """(list key, message) of a native task's Celery message for storage to push atomically with the
        commit that grants its lease, or None when it must be sent after the commit (`run_native_task`)."""

    @property
    def chords(self) -> bool:
        """True when fan-ins are Celery chords (Redis mode); else the branch count triggers the fan-in."""

    def start_fan_in(self, job_id: str, group_id: str, branch_ids: list[str]) -> None:
        """Start the fan-in of a fan-out: a chord of one parked member per branch and the aggregate body."""

    def complete_branch(self, branch_id: str, result: dict[str, Any], context: str) -> None:
        """Complete a parked chord member with the branch's outcome (`backend.mark_as_done`)."""


@dataclass
class InlineScheduler:
    """A scheduler that queues steps in memory; `drain` runs them in this thread (tests of pure logic)."""

    pending: list[tuple[str, int, float]] = field(default_factory=list)
    native: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)

    def schedule_step(
        self, job_id: str, seq: int, delay: float = 0.0, *, blueprint: str = "", state: str = "", resent: bool = False
    ) -> None:
        self.pending.append((job_id, seq, delay))

    def run_native_task(self, job_id: str, task_id: str, task_type: str, params: dict[str, Any]) -> None:
        self.native.append((job_id, task_id, task_type, params))

    def step_message(self, job_id: str, seq: int, *, blueprint: str = "", state: str = "") -> tuple[str, str] | None:
        return None  # steps are scheduled after each commit

    def native_message(
        self, job_id: str, task_id: str, task_type: str, params: dict[str, Any]
    ) -> tuple[str, str] | None:
        return None  # native tasks are sent after each commit

    chords = False

    def start_fan_in(self, job_id: str, group_id: str, branch_ids: list[str]) -> None:
        pass  # the branch count triggers the fan-in

    def complete_branch(self, branch_id: str, result: dict[str, Any], context: str) -> None:
        pass

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
    changes: JobChanges | None = None


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
        stream: EventStream,
        native_tasks: dict[str, Any] | None = None,
        notifiers: dict[str, Notifier] | None = None,
    ) -> None:
        self.storage = storage
        self.config = config
        self.blueprints = blueprints
        self.scheduler = scheduler
        self.stream = stream
        self.native_tasks = native_tasks if native_tasks is not None else {}
        self.notifiers = notifiers if notifiers is not None else {}
        self.dispatcher = Dispatcher(storage, config)

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
        monthly_attempts: int | None = None,
        tracing_context: dict[str, str] | None = None,
    ) -> tuple[str, bool]:
        """Store a new job and schedule its first step; returns `(job_id, created)`.

        With an idempotency key a repeated request of the same client returns the first job's id and
        `created=False`. With `monthly_attempts` the create counts against the client's quota for this
        calendar month; `QuotaExceeded` when it is used up. `tracing_context`: the W3C context of the create
        request, which the job's steps and tasks continue.
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
        if tracing_context:
            job["tracing_context"] = tracing_context
        scoped_key = None
        if idempotency_key is not None:
            scoped_key = hashlib.sha256(f"{client.client_id}\0{idempotency_key}".encode()).hexdigest()
        publish = self.scheduler.step_message(job["id"], 0, blueprint=blueprint_name, state=job["current_state"])
        job_id = self.storage.create_job(
            job,
            idempotency_key=scoped_key,
            idempotency_ttl=self.config.IDEMPOTENCY_TTL_SECONDS,
            watch_until=job["created_at"] + self.config.STEP_STALL_SECONDS,
            publish=publish,
            quota=monthly_quota(client.client_id, monthly_attempts),
        )
        if job_id != job["id"]:
            return job_id, False
        self.stream.emit([self._created(job, job["created_at"])])
        if publish is None:
            self.scheduler.schedule_step(job_id, 0, blueprint=blueprint_name, state=job["current_state"])
        return job_id, True

    def get_job(self, job_id: str) -> Job | None:
        """The stored job record, or None."""
        return self.storage.get_job(job_id)

    # -- steps ----------------------------------------------------------------------------------------

    def run_step(self, job_id: str, seq: int, *, redelivered: bool = False) -> str:
        """Run the step `(job_id, seq)`; returns what happened: missing, stale, idle, conflict, committed or
        poisoned. `redelivered`: the broker delivers this message again (its last run did not finish)."""
        job = self.storage.get_job(job_id)
        if job is None:
            return "missing"
        if job["seq"] != seq:
            logger.debug("dropping stale step %s seq=%s (job is at %s)", job_id, seq, job["seq"])
            return "stale"
        if JobStatus(job["status"]) not in RUNNABLE:
            return "idle"
        if redelivered and self.quarantine_if_poisoned(job):
            return "poisoned"
        blueprint = self.blueprints.get(job["blueprint_name"])
        events: list[Pending] = []
        started = time.monotonic()
        steps = 0
        while True:
            if blueprint is None:
                move = self._fail(job, f"blueprint {job['blueprint_name']!r} is not registered on this engine")
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
        next_step = move.delay if move.kind in ("continue", "retry") else None
        verdict = self.commit(job, seq, move.changes, next_step=next_step, events=events)
        if verdict == "invalid":  # nothing was written: fail the job instead of re-running the step forever
            stored = self.storage.get_job(job_id)
            if stored is not None and stored["seq"] == seq:
                fail(stored, f"state {stored['current_state']!r}: the step produced a number storage refuses (NaN)")
                self.commit(stored, seq)
            return "invalid"
        if verdict != "ok":
            logger.info("step %s seq=%s lost a race; its result is discarded", job_id, seq)
            return "conflict"
        return "committed"

    def quarantine_if_poisoned(self, job: Job) -> bool:
        """Count one more delivery of the job's current step (a broker redelivery, or a run of the sweep's
        re-send), counted when it runs, so copies waiting in a backlog count nothing; past
        `STEP_MAX_DELIVERIES` deliveries the job is quarantined instead of run again (True)."""
        seq = job["seq"]
        deliveries = 1 + self.storage.count_delivery(job["id"], seq, DELIVERY_COUNT_TTL)
        if deliveries <= self.config.STEP_MAX_DELIVERIES:
            return False
        logger.error("job %s: step seq=%s delivered %s times, never finished: quarantined", job["id"], seq, deliveries)
        fail(
            job,
            f"state {job['current_state']!r}: its step was delivered {deliveries} times without finishing (the "
            f"worker process died or storage failed each time); quarantined after STEP_MAX_DELIVERIES="
            f"{self.config.STEP_MAX_DELIVERIES}",
            JobStatus.QUARANTINED,
        )
        self.commit(job, seq)
        return True

    def commit(
        self,
        job: Job,
        expected_seq: int,
        changes: JobChanges | None = None,
        *,
        next_step: float | None = None,
        events: list[Pending] | None = None,
    ) -> str:
        """Commit `job` (compare-and-set on `expected_seq`) with its index changes, retention and deadline.

        `next_step`: the job (if still runnable) runs its next step after that many seconds. An immediate
        step's broker message goes into the same atomic commit when storage can do that (Redis mode);
        otherwise the step is scheduled once the commit succeeded. On "ok" the after-commit effects of
        `changes` run, then the stream gets the `events` decided before the commit, the events of the child
        jobs created and, for a terminal job, its end event (once: only one commit can make a job terminal).
        """
        changes = changes or JobChanges()
        status = JobStatus(job["status"])
        terminal = status.is_terminal
        if terminal:
            changes.add(NotifyEnd())
            if job.get("webhook_url"):
                changes.add(QueueWebhook(job["id"], time.time()))
        if next_step is not None and status not in RUNNABLE:
            next_step = None
        published = False
        if next_step == 0:
            message = self.scheduler.step_message(
                job["id"], expected_seq + 1, blueprint=job["blueprint_name"], state=job["current_state"]
            )
            if message is not None:
                changes.add(PublishStep(*message))
                published = True
        # Events are stamped before the write: anything another process does after the commit is later.
        stamped = time.time()
        for _, fields in events or []:
            fields.setdefault("timestamp", stamped)
        result = self.storage.commit_job_changes(
            job,
            expected_seq,
            changes,
            retention_seconds=self.config.JOB_RETENTION_SECONDS if terminal else None,
            watch_until=self.watch_deadline(job, next_step or 0.0),
        )
        if result != "ok":
            return result
        if next_step is not None and not published:
            self.scheduler.schedule_step(
                job["id"], job["seq"], next_step, blueprint=job["blueprint_name"], state=job["current_state"]
            )
        for effect in changes.after:
            try:
                effect()
            except Exception:
                logger.exception("after-commit effect failed for job %s", job["id"])
        if self.stream.active:
            self.stream.emit(self._committed_events(job, changes, events or [], terminal, stamped))
        if terminal and job.get("parent_id"):
            try:
                self.resume_parent(job["id"], job["parent_id"])
            except Exception:  # the sweep resumes the parent later
                logger.exception("resuming the parent of job %s failed", job["id"])
        return result

    def _created(self, job: Job, timestamp: float) -> JobEvent:
        details = {"client_id": job.get("client_id"), "parent_id": job.get("parent_id")}
        clean = {k: v for k, v in details.items() if v is not None}
        return job_event(job, JOB_CREATED, details=clean, timestamp=timestamp)

    def _committed_events(
        self, job: Job, changes: JobChanges, events: list[Pending], terminal: bool, stamped: float
    ) -> list[JobEvent]:
        """The events of a commit that succeeded, in the order they happened (stamped before the write)."""
        wants = self.stream.wants
        out = [job_event(job, kind, **fields) for kind, fields in events if wants(kind)]
        for op in changes.of(CreateJob):
            child = op.job
            out.append(self._created(child, stamped))
            started = {"child_id": child["id"], "child_blueprint": child["blueprint_name"]}
            out.append(
                job_event(job, SUB_JOB_STARTED, next_state=child["blueprint_name"], details=started, timestamp=stamped)
            )
        if terminal:
            ended = job.get("finished_at") or stamped
            details = {"error_message": job.get("error_message"), "webhook": bool(job.get("webhook_url"))}
            duration = max(0, round((ended - job["created_at"]) * 1000))
            kind = JOB_ENDS[job["status"]]
            out.append(job_event(job, kind, duration_ms=duration, details=details, timestamp=stamped))
        return out

    def watch_deadline(
        self, job: Job, delay: float = 0.0, now: float | None = None, *, leased: bool = False
    ) -> float | None:
        """When the sweep must look at this job next: stall check, dispatch and result timeouts."""
        status = JobStatus(job["status"])
        if status.is_terminal:
            return None
        moment = time.time() if now is None else now
        due: list[float] = []
        if status in RUNNABLE:
            due.append(moment + delay + self.config.STEP_STALL_SECONDS)
        if job.get("result_timeout"):
            due.append(job["created_at"] + job["result_timeout"])
        task = current_task(job)
        if status == JobStatus.WAITING_FOR_WORKER and task and job.get("dispatch_timeout") and not leased:
            due.append(task["dispatched_at"] + job["dispatch_timeout"])
        approval = wait_of(job, "approval")
        if status == JobStatus.WAITING_FOR_HUMAN and approval and approval.get("deadline"):
            due.append(approval["deadline"])
        if status in (JobStatus.WAITING_FOR_SUB_JOB, JobStatus.WAITING_FOR_PARALLEL_TASKS):
            # the backstop for a resume or a fan-in lost in a crash
            due.append(moment + delay + self.config.STEP_STALL_SECONDS)
        return min(due) if due else None

    def _advance(self, job: Job, blueprint: StateMachineBlueprint, events: list[Pending]) -> _Move:
        """Run the handler of the job's current state and apply its action to `job` in memory."""
        task = current_task(job)
        if job["status"] == JobStatus.AWAITING_RETRY.value and task and task.get("retry"):
            return self._queue_task(job, next_attempt(task, time.time()), events)
        if job["status"] != JobStatus.RUNNING.value:
            set_status(job, JobStatus.RUNNING)
        state = job["current_state"]
        began = time.monotonic()
        snapshot = dumps(job["state_history"])
        events.append((STATE_STARTED, {"state": state, "attempt": job["retry_count"] + 1}))
        try:  # no handler for this state: running the step again cannot help, so the job fails at once
            spec = blueprint.find_handler(state, job["initial_data"], job["state_history"])
        except HandlerError as exc:
            logger.warning("job %s failed (no handler can run, so no retry): %s", job["id"], exc)
            details = {"error_message": str(exc)}
            events.append((STATE_FAILED, {"state": state, "attempt": job["retry_count"] + 1, "details": details}))
            return self._fail(job, str(exc))
        if spec is None:
            return self._end(job, state)
        try:
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
        finished: dict[str, Any] = {
            "state": state,
            "previous_state": state,
            "duration_ms": round((time.monotonic() - began) * 1000),
        }
        events.append((STATE_FINISHED, finished))
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
            finished["next_state"] = target
            cause = f"state {state!r}: transition_to({target!r})"
            entered = enter_state(job, blueprint, target, self.config, cause=cause)
            return _CONTINUE if entered and job["status"] == JobStatus.RUNNING.value else _STOP
        if action["kind"] == "dispatch_task":
            try:
                return self._queue_task(job, new_task(action, self.config, time.time()), events)
            except HandlerError as exc:
                return self._fail(job, f"state {state!r}: {exc}")
        if action["kind"] == "await_human_approval":
            return self._await_approval(job, state, action, events)
        if action["kind"] == "run_blueprint":
            return self._run_blueprint(job, state, action)
        if action["kind"] == "dispatch_parallel":
            return self._fan_out(job, state, action, events)
        return self._fail(job, f"state {state!r}: action {action['kind']} is not supported by this engine yet")

    def _await_approval(self, job: Job, state: str, action: dict[str, Any], events: list[Pending]) -> _Move:
        """Make the job wait for a human decision; its notifier is told once the commit succeeded."""
        timeout = action.get("timeout_seconds")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < 10 * 365 * 86400
        ):
            return self._fail(job, f"state {state!r}: await_human_approval: timeout_seconds must be a positive number")
        now = time.time()
        wait: ApprovalWait = {
            "kind": "approval",
            "integration": str(action["integration"]),
            "message": str(action["message"]),
            "transitions": dict(action["transitions"]),
            "requested_at": now,
            "deadline": now + timeout if timeout else None,
        }
        job["wait"] = wait
        job["approval_requested_at"] = now  # the token stays checkable after the decision (409, not 401)
        set_status(job, JobStatus.WAITING_FOR_HUMAN)
        changes = JobChanges()
        job_id = job["id"]
        changes.after.append(lambda: self._notify(job_id, wait))
        requested = {
            "integration": wait["integration"],
            "message": wait["message"],
            "decisions": sorted(wait["transitions"]),
            "deadline": wait["deadline"],
        }
        events.append((APPROVAL_REQUESTED, {"state": state, "details": requested}))
        return _Move("stop", changes=changes)

    def _run_blueprint(self, job: Job, state: str, action: dict[str, Any]) -> _Move:
        """Start a child job in the same atomic commit and make the parent wait for its end."""
        blueprint = self.blueprints.get(action["blueprint_name"])
        if blueprint is None:
            return self._fail(job, f"state {state!r}: run_blueprint: unknown blueprint {action['blueprint_name']!r}")
        try:
            child = child_job(job, blueprint, action["initial_data"], time.time())
        except HandlerError as exc:
            return self._fail(job, f"state {state!r}: {exc}")
        job["wait"] = child_wait(child, dict(action["transitions"]))
        set_status(job, JobStatus.WAITING_FOR_SUB_JOB)
        publish = self.scheduler.step_message(
            child["id"], 0, blueprint=child["blueprint_name"], state=child["current_state"]
        )
        watch = child["created_at"] + self.config.STEP_STALL_SECONDS
        changes = JobChanges().add(CreateJob(child, watch, publish))
        if publish is None:
            child_id, name, first = child["id"], child["blueprint_name"], child["current_state"]
            changes.after.append(lambda: self.scheduler.schedule_step(child_id, 0, blueprint=name, state=first))
        return _Move("stop", changes=changes)

    def move_on(
        self, job: Job, target: str | None, cause: str, *, otherwise: str = "", event: Pending | None = None
    ) -> bool:
        """An event answered a waiting job: enter `target` (or fail the job with `otherwise` when there is no
        target, or when its blueprint is not registered here) and commit, compare-and-set on the job's `seq`,
        with the next step at once. True when this commit won. `event`: what answered, for the stream
        (its `previous_state`/`next_state` are filled in here)."""
        seq = job["seq"]
        state = job["current_state"]
        blueprint = self.blueprints.get(job["blueprint_name"])
        if blueprint is None:
            fail(job, f"blueprint {job['blueprint_name']!r} is not registered here")
        elif target is None:
            fail(job, otherwise)
        else:
            enter_state(job, blueprint, target, self.config, cause=cause)
        events: list[Pending] = []
        if event is not None:
            kind, fields = event
            events.append((kind, {"state": state, "previous_state": state, "next_state": target, **fields}))
        return self.commit(job, seq, next_step=0.0, events=events) == "ok"

    def load_waiting(
        self, job_id: str, kind: str, status: JobStatus, **match: Any
    ) -> tuple[Job, dict[str, Any]] | None:
        """The job and its wait record if it is in `status`, waiting for `kind` with these fields, else None
        (the event that asked came too late: the job moved on)."""
        job = self.storage.get_job(job_id)
        wait = wait_of(job, kind) if job is not None else None
        if job is None or wait is None or job["status"] != status.value:
            return None
        if any(wait.get(name) != value for name, value in match.items()):
            return None
        return job, wait

    def resume_parent(self, child_id: str, parent_id: str) -> bool:
        """Resume the parent waiting for this child, once the child is terminal (idempotent: a parent that
        no longer waits for it is left alone). True when this call resumed it."""
        for _ in range(16):
            found = self.load_waiting(parent_id, "child", JobStatus.WAITING_FOR_SUB_JOB, child_id=child_id)
            if found is None:
                return False
            parent, wait = found
            child = self.storage.get_job(child_id)
            if child is not None and not JobStatus(child["status"]).is_terminal:
                return False
            result = child_result(child, child_id)
            parent["state_history"].setdefault("sub_job_results", {})[child_id] = result
            key = outcome_key(result)
            missing = f"child job {child_id} ended {result['status']} and run_blueprint has no {key!r} transition"
            ended = (SUB_JOB_FINISHED, {"details": {"child_id": child_id, "child_status": result["status"]}})
            target = wait["transitions"].get(key)
            if self.move_on(parent, target, f"child job outcome {key!r}", otherwise=missing, event=ended):
                return True
        return False

    def approval_request(self, job_id: str, wait: ApprovalWait) -> ApprovalRequest:
        """What a notifier is told about a job waiting for a decision (its approval token included)."""
        token = approval_token(self.storage.shared_secret("approval"), job_id, wait["requested_at"])
        return ApprovalRequest(
            job_id=job_id,
            integration=wait["integration"],
            message=wait["message"],
            decisions=sorted(wait["transitions"]),
            approval_token=token,
            deadline=wait.get("deadline"),
            approval_path=f"/_public/webhooks/approval/{job_id}",
        )

    def _notify(self, job_id: str, wait: ApprovalWait) -> None:
        notifier = self.notifiers.get(wait["integration"])
        if notifier is None:
            logger.warning(
                "job %s waits for approval through integration %r, which has no notifier registered "
                "(engine.register_notifier); it waits as usual",
                job_id,
                wait["integration"],
            )
            return
        notifier(self.approval_request(job_id, wait))

    def _queue_task(self, job: Job, task: TaskWait, events: list[Pending]) -> _Move:
        """Put the job's task in its queue (or send it to Celery for a native task type) on commit."""
        job["wait"] = task
        job["progress"] = None
        set_status(job, JobStatus.WAITING_FOR_WORKER)
        changes = JobChanges()
        self.task_ops(job["id"], task, changes, wake=True)
        events.append((TASK_DISPATCHED, task_fields(dict(task))))
        return _Move("stop", changes=changes)

    def task_ops(self, job_id: str, task: TaskWait, changes: JobChanges, *, wake: bool) -> None:
        """Add what dispatching `task` takes to `changes`: a queue entry (HTTP workers; `wake` one poll after
        the commit) or a lease held by Celery and the native task's message (native task types)."""
        task_type, task_id = task["task_type"], task["task_id"]
        if task_type in self.native_tasks:
            task["native"] = True
            deadline = task["dispatched_at"] + task["timeout"]
            changes.add(GrantLease(Lease(task_id, job_id, NATIVE_WORKER, deadline, task_type)))
            params = task["params"]
            message = self.scheduler.native_message(job_id, task_id, task_type, params)
            if message is not None:  # Redis mode: the message exists if and only if the commit does
                changes.add(PublishStep(*message))
            else:
                changes.after.append(lambda: self.scheduler.run_native_task(job_id, task_id, task_type, params))
            return
        entry = QueueEntry(task_type, task_id, job_id, task["priority"], task["timeout"], task["requirements"])
        task["member"], task["queue"] = entry.member, entry.queue
        changes.add(Enqueue(entry))
        if wake:
            req, strategy = task["requirements"], task["strategy"]
            changes.after.append(lambda: self.dispatcher.wake_for(task_type, req, strategy))

    def _fan_out(self, job: Job, state: str, action: dict[str, Any], events: list[Pending]) -> _Move:
        """`dispatch_parallel`: every branch is a task of its own, stored beside the job and dispatched in this
        commit; the fan-in (a Celery chord in Redis mode, else the branch count) runs the aggregator once."""
        now = time.time()
        branches: dict[str, TaskWait] = {}
        try:
            for spec in action["tasks"]:
                task = new_task({**spec, "transitions": {}}, self.config, now)
                branch_id = str(uuid.uuid4())
                task["task_id"] = f"{branch_id}~1"
                branches[branch_id] = task
        except HandlerError as exc:
            return self._fail(job, f"state {state!r}: {exc}")
        group_id = str(uuid.uuid4())
        job["wait"] = {
            "kind": "branches",
            "group_id": group_id,
            "aggregate_into": action["aggregate_into"],
            "total": len(branches),
        }
        job["aggregation_results"] = None
        set_status(job, JobStatus.WAITING_FOR_PARALLEL_TASKS)
        changes = JobChanges()
        woken: dict[tuple[str, str, str], TaskWait] = {}
        for task in branches.values():
            self.task_ops(job["id"], task, changes, wake=False)
            events.append((TASK_DISPATCHED, task_fields(dict(task))))
            if not task.get("native"):
                woken.setdefault((task["task_type"], json.dumps(task["requirements"]), task["strategy"]), task)
        changes.ops.insert(0, StoreBranches(job["id"], dict(branches)))  # type: ignore[arg-type]
        for task in woken.values():  # one wake-up per kind of task: each claim wakes the next poll
            changes.after.append(
                functools.partial(self.dispatcher.wake_for, task["task_type"], task["requirements"], task["strategy"])
            )
        job_id, ids = job["id"], list(branches)
        changes.after.append(lambda: self.scheduler.start_fan_in(job_id, group_id, ids))
        return _Move("stop", changes=changes)

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
        if state == "failed":
            fail(job, job.get("error_message") or "the job reached its end state 'failed'")
        else:
            set_status(job, JobStatus.FINISHED)
        return _STOP

    def _fail(self, job: Job, message: str) -> _Move:
        fail(job, message)
        return _STOP

    def _handler_failed(self, job: Job, state: str, exc: Exception, events: list[Pending]) -> _Move:
        """A handler raised: retry the step with backoff, or quarantine the job after `JOB_MAX_RETRIES` retries.

        Each failure is logged at WARNING (job, state, attempt); the traceback is logged at ERROR once, when the
        job is quarantined, and kept with the job (`error_traceback`, never in the view)."""
        detail = traceback.format_exc()
        text = str(exc)
        if isinstance(exc, HandlerError):  # its message may already name the state
            text = text.removeprefix(f"state {state!r}: ")
        else:
            text = f"handler raised {type(exc).__name__}: {text}"
        message = f"state {state!r}: {text}"
        failed = {"error_message": message, "traceback": detail}
        events.append((STATE_FAILED, {"state": state, "attempt": job["retry_count"] + 1, "details": failed}))
        job["retry_count"] += 1
        attempt, retries = job["retry_count"], self.config.JOB_MAX_RETRIES
        job["error_message"] = message
        if attempt > retries:
            job["error_message"] = f"{message} (quarantined after {retries} retries)"
            job["error_traceback"] = detail
            set_status(job, JobStatus.QUARANTINED)
            logger.error(
                "job %s quarantined at state %r after %d attempts; last traceback:\n%s",
                job["id"],
                state,
                attempt,
                detail.rstrip(),
            )
            return _STOP
        set_status(job, JobStatus.AWAITING_RETRY)
        delay = self.config.JOB_RETRY_BASE_SECONDS * 2 ** (attempt - 1)
        delay *= 1 + random.random() * 0.25
        logger.warning(
            "job %s: the handler of state %r failed (attempt %d of %d), retrying in %.1f s: %s",
            job["id"],
            state,
            attempt,
            retries + 1,
            delay,
            message,
        )
        return _Move("retry", delay)
