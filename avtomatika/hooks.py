"""Side effects subscribe to engine events through `Hooks`; every method is a no-op by default."""

from __future__ import annotations

import logging
from typing import Any

from .job import Job

logger = logging.getLogger(__name__)


class Hooks:
    """Subscriber interface: override what you need (history, metrics, webhooks)."""

    def job_created(self, job: Job) -> None:
        """A job was stored (called once per job, not for idempotent repeats)."""

    def state_finished(self, job: Job, state: str, duration: float) -> None:
        """A state's handler ran and its result was committed."""

    def step_failed(self, job: Job, state: str, error: str, traceback: str) -> None:
        """A handler raised; the step will be retried or the job quarantined."""

    def task_dispatched(self, job: Job, task: dict[str, Any]) -> None:
        """A task was queued for a worker (or sent to Celery for a native task type)."""

    def task_finished(self, job: Job, task: dict[str, Any], answer: str) -> None:
        """A worker's result for the job's task was accepted (`answer`: the result answer of SPEC §4)."""

    def approval_requested(self, job: Job, wait: dict[str, Any]) -> None:
        """The job waits for a human decision (after the commit that made it wait)."""

    def job_ended(self, job: Job) -> None:
        """The job reached a terminal status (called once, after the commit that made it terminal)."""


class HookChain(Hooks):
    """Calls every subscriber in order; a failing subscriber is logged and never fails the job."""

    def __init__(self) -> None:
        self.subscribers: list[Hooks] = []

    def add(self, hooks: Hooks) -> None:
        """Subscribe `hooks` to every event."""
        self.subscribers.append(hooks)

    def _emit(self, name: str, *args: Any) -> None:
        for subscriber in self.subscribers:
            try:
                getattr(subscriber, name)(*args)
            except Exception:
                logger.exception("hook %s of %s failed", name, type(subscriber).__name__)

    def job_created(self, job: Job) -> None:
        self._emit("job_created", job)

    def state_finished(self, job: Job, state: str, duration: float) -> None:
        self._emit("state_finished", job, state, duration)

    def step_failed(self, job: Job, state: str, error: str, traceback: str) -> None:
        self._emit("step_failed", job, state, error, traceback)

    def task_dispatched(self, job: Job, task: dict[str, Any]) -> None:
        self._emit("task_dispatched", job, task)

    def task_finished(self, job: Job, task: dict[str, Any], answer: str) -> None:
        self._emit("task_finished", job, task, answer)

    def approval_requested(self, job: Job, wait: dict[str, Any]) -> None:
        self._emit("approval_requested", job, wait)

    def job_ended(self, job: Job) -> None:
        self._emit("job_ended", job)
