"""Dispatching: build a job's task, choose which idle eligible worker to wake, and hand tasks out.

The strategy is a preference about whom to wake first; any eligible worker that polls takes the best
waiting task (highest priority, then oldest), so a polling capable worker is never refused work.
"""

from __future__ import annotations

import logging
import math
import random
import time
import uuid
from typing import Any

from .config import Config
from .errors import HandlerError
from .storage.base import StorageBackend
from .tasks import Claim, capabilities, eligible, requirements, task_cost
from .waits import TaskWait

logger = logging.getLogger(__name__)

WAKE_BATCH = 32
STRATEGIES = ("default", "round_robin", "least_connections", "cheapest", "best_value")


def poll_worker(poll: str) -> str:
    """The worker id of a long-poll id (`worker_id|poll_id`)."""
    return poll.partition("|")[0]


def accepts_work(worker: dict[str, Any]) -> bool:
    """A worker that reported itself draining or offline is not given new tasks."""
    return worker.get("status") not in ("draining", "offline")


def new_task(action: dict[str, Any], config: Config, now: float) -> TaskWait:
    """The task record a `dispatch_task` action puts into the job (attempt 1)."""
    strategy = action.get("dispatch_strategy") or "default"
    if strategy not in STRATEGIES:
        raise HandlerError(f"dispatch_task: unknown dispatch_strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    timeout = action.get("timeout_seconds") or config.WORKER_TIMEOUT_SECONDS
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < 10 * 365 * 86400:
        raise HandlerError(f"dispatch_task: timeout_seconds must be a positive number of seconds, got {timeout!r}")
    priority = action.get("priority") or 0.0
    if isinstance(priority, bool) or not isinstance(priority, int | float) or not math.isfinite(priority):
        raise HandlerError(f"dispatch_task: priority must be a finite number, got {priority!r}")
    return {
        "kind": "task",
        "task_id": str(uuid.uuid4()),
        "task_type": action["task_type"],
        "params": action.get("params") or {},
        "transitions": action.get("transitions") or {},
        "priority": float(priority),
        "timeout": float(timeout),
        "requirements": requirements(action.get("resource_requirements"), action.get("max_cost")),
        "strategy": strategy,
        "attempt": 1,
        "dispatched_at": now,
    }


def next_attempt(task: TaskWait, now: float) -> TaskWait:
    """The same task dispatched again: a new task id (so late results of the old attempt are stale)."""
    again: TaskWait = {k: v for k, v in task.items() if k not in ("retry", "member")}  # type: ignore[assignment]
    again["task_id"] = str(uuid.uuid4())
    again["attempt"] = int(task.get("attempt", 1)) + 1
    again["dispatched_at"] = now
    return again


class Dispatcher:
    """Wakes long-polling workers and claims tasks for them."""

    def __init__(self, storage: StorageBackend, config: Config) -> None:
        self.storage = storage
        self.config = config

    @property
    def worker_ttl(self) -> float:
        """How long a worker stays alive without a heartbeat."""
        return 2.0 * self.config.WORKER_HEALTH_CHECK_INTERVAL_SECONDS

    def wake_for(self, task_type: str, req: dict[str, Any] | None, strategy: str, exclude: str = "") -> str | None:
        """Wake one open long-poll of the preferred idle eligible worker for `task_type`; returns the poll.

        Polls are `worker_id|poll_id` (a worker with several slots has several). The strategy chooses among
        a sample of `WAKE_BATCH` polls taken at a random offset, so a dispatch costs the same with 20 or
        2,000 idle polls; only when no sampled worker is eligible are the others looked at, in batches.
        """
        now = time.time()
        sample = [p for p in self.storage.sample_pollers(task_type, now, WAKE_BATCH, random.random()) if p]
        chosen = self._wake_among(sample, task_type, req, strategy, exclude)
        if chosen is not None or len(sample) < WAKE_BATCH:  # a short sample held every open poll
            return chosen
        rest = [p for p in self.storage.pollers(task_type, now) if p not in sample]
        random.shuffle(rest)
        for start in range(0, len(rest), WAKE_BATCH):
            chosen = self._wake_among(rest[start : start + WAKE_BATCH], task_type, req, strategy, exclude)
            if chosen is not None:
                return chosen
        return None

    def _wake_among(
        self, polls: list[str], task_type: str, req: dict[str, Any] | None, strategy: str, exclude: str
    ) -> str | None:
        polls = [p for p in polls if poll_worker(p) != exclude]
        if not polls:
            return None
        records = self.storage.get_workers([poll_worker(p) for p in polls])
        candidates = {
            r["worker_id"]: poll
            for poll, r in zip(polls, records, strict=True)
            if r is not None and eligible(req, capabilities(r), task_type) and accepts_work(r)
        }
        if not candidates:
            return None
        workers = [r for r in records if r is not None and r["worker_id"] in candidates]
        poll = candidates[self.choose(workers, strategy, task_type)]
        self.storage.wake(poll)
        return poll

    def choose(self, workers: list[dict[str, Any]], strategy: str, task_type: str) -> str:
        """The id of the worker `strategy` prefers among `workers` (all idle and eligible)."""
        by_id = sorted({w["worker_id"]: w for w in workers}.values(), key=lambda w: w["worker_id"])

        def cost(worker: dict[str, Any]) -> float:
            return task_cost(capabilities(worker), task_type)

        if strategy == "round_robin":
            turn = self.storage.next_counter(f"round_robin:{task_type}")
            return str(by_id[(turn - 1) % len(by_id)]["worker_id"])
        if strategy == "least_connections":
            counts = self.storage.active_tasks([w["worker_id"] for w in by_id])
            _, index = min((count, i) for i, count in enumerate(counts))
            return str(by_id[index]["worker_id"])
        if strategy == "cheapest":
            return str(min(by_id, key=cost)["worker_id"])
        if strategy == "best_value":
            return str(min(by_id, key=lambda w: cost(w) / max(float(w.get("reputation", 1.0)), 0.01))["worker_id"])
        # default: a worker with the task type in its hot cache first, then the cheapest
        return str(min(by_id, key=lambda w: (task_type not in (w.get("hot_cache") or []), cost(w)))["worker_id"])

    def heartbeat(self, worker_id: str, updates: dict[str, Any] | None) -> tuple[dict[str, Any] | None, list[str]]:
        """Refresh a worker (see `StorageBackend.heartbeat_worker`).

        When the heartbeat changes `supported_tasks` (SDK 1.0b3 reports the types it has room for), the
        worker's open long-polls are woken so that they poll for the new types instead of sleeping on the old.
        """
        before = None
        if updates and "supported_tasks" in updates:
            before = self.storage.get_workers([worker_id])[0]
        now = time.time()
        record, cancels = self.storage.heartbeat_worker(worker_id, self.worker_ttl, now, updates)
        if before is not None and record is not None and before.get("supported_tasks") != record["supported_tasks"]:
            for task_type in before.get("supported_tasks") or []:
                for poll in self.storage.pollers(task_type, now):
                    if poll_worker(poll) == worker_id:
                        self.storage.wake(poll)
        return record, cancels

    def claim(self, worker: dict[str, Any], poll: str = "", poll_until: float = 0.0) -> Claim | None:
        """Take the best waiting task this worker may run (creates its lease); with a `poll` id, register
        the poll as waiting when there is none (one atomic operation, see `StorageBackend.claim_task`).

        Nothing for a draining or offline worker, nor for one already holding `max_concurrent_tasks`.
        """
        types = list(worker.get("supported_tasks") or [])
        if not accepts_work(worker):
            if poll:
                self.storage.set_poller(poll, types, None)
            return None
        limit = int((worker.get("resources") or {}).get("max_concurrent_tasks") or 0)
        return self.storage.claim_task(
            worker["worker_id"], types, capabilities(worker), time.time(), self.worker_ttl, poll, poll_until, limit
        )
