"""A task as the orchestrator hands it out, and the context a handler sees while it runs it."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import TaskCancelled

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    """The payload of ``GET /_worker/workers/{id}/tasks/next`` (SPEC §4)."""

    job_id: str
    task_id: str
    type: str
    params: Any = field(default_factory=dict)
    priority: float = 0.0
    deadline: float | None = None
    attempt: int = 1
    tracing_context: Any = None

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Task:
        """Read a task payload; `ValueError` when `job_id`, `task_id` or `type` is missing.

        `params` is kept as sent: a non-dict is reported by the runtime as an `INVALID_INPUT_ERROR`.
        """
        missing = [key for key in ("job_id", "task_id", "type") if not isinstance(payload.get(key), str)]
        if missing:
            raise ValueError(f"task payload lacks {', '.join(missing)}: {dict(payload)!r}")
        deadline = payload.get("deadline")
        return cls(
            job_id=payload["job_id"],
            task_id=payload["task_id"],
            type=payload["type"],
            params={} if payload.get("params") is None else payload["params"],
            priority=float(payload.get("priority") or 0.0),
            deadline=float(deadline) if isinstance(deadline, int | float) else None,
            attempt=int(payload.get("attempt") or 1),
            tracing_context=payload.get("tracing_context"),
        )


class TaskReporter(Protocol):
    """Where a context sends progress and heartbeats: the worker runtime, or the test harness's recorder."""

    async def report_progress(self, task: Task, fraction: float, message: str) -> None:
        """Deliver one progress update of `task` (or drop it, logging why)."""

    async def heartbeat(self) -> None:
        """Send a worker heartbeat now."""


class TaskContext:
    """What a handler knows about the task it runs, and how it talks back.

    Inject it into a handler as a parameter named ``ctx`` or ``context``. Async handlers use ``await
    ctx.progress(...)`` and ``await ctx.heartbeat()``; sync handlers (run in a thread) use the blocking
    ``ctx.progress_sync(...)`` and ``ctx.heartbeat_sync()``.
    """

    def __init__(self, task: Task, reporter: TaskReporter, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.task = task
        self._reporter = reporter
        self._loop = loop or asyncio.get_running_loop()
        self._cancelled = threading.Event()  # set from the event loop, read from handler threads

    @property
    def params(self) -> Any:
        """The task's `params` (a dict)."""
        return self.task.params

    @property
    def job_id(self) -> str:
        """Id of the job the task belongs to."""
        return self.task.job_id

    @property
    def task_id(self) -> str:
        """Id of the task; results and progress are keyed by it."""
        return self.task.task_id

    @property
    def task_type(self) -> str:
        """The task type the handler was registered for."""
        return self.task.type

    @property
    def attempt(self) -> int:
        """1 for the first try, 2 for the first retry, and so on."""
        return self.task.attempt

    @property
    def deadline(self) -> float | None:
        """Epoch seconds after which the orchestrator stops waiting for this attempt, if it set one."""
        return self.task.deadline

    @property
    def priority(self) -> float:
        """The task's priority (higher first)."""
        return self.task.priority

    @property
    def tracing_context(self) -> Any:
        """The W3C trace context of the job (e.g. ``{"traceparent": ...}``), to continue its trace."""
        return self.task.tracing_context

    @property
    def is_cancelled(self) -> bool:
        """True once the orchestrator cancelled the task (WebSocket push or heartbeat answer).

        Cancellation is cooperative: check this between units of work and return early; whatever the handler
        then returns or raises, the task is reported with status `cancelled`.
        """
        return self._cancelled.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise `TaskCancelled` if the task was cancelled (a shortcut for returning early)."""
        if self._cancelled.is_set():
            raise TaskCancelled(f"task {self.task_id} was cancelled", task_id=self.task_id)

    def mark_cancelled(self) -> None:
        """Flag the task as cancelled (called by the runtime; tests may call it too)."""
        self._cancelled.set()

    async def progress(self, fraction: float, message: str = "") -> None:
        """Report progress (0..1) with an optional message.

        Sent over the worker's WebSocket when it is connected; otherwise dropped with a debug log, because
        progress is advisory and must never fail a task.

        Raises:
            ValueError: `fraction` is not a number between 0 and 1.
        """
        # `not 0 <= x <= 1` also rejects NaN.
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 <= fraction <= 1:
            raise ValueError(f"progress must be a number between 0 and 1, got {fraction!r}")
        await self._reporter.report_progress(self.task, float(fraction), str(message))

    async def heartbeat(self) -> None:
        """Send a worker heartbeat now: refreshes the worker's TTL and picks up cancellations.

        It does not extend the task's lease (`timeout_seconds` of the dispatch).
        """
        await self._reporter.heartbeat()

    def progress_sync(self, fraction: float, message: str = "") -> None:
        """Blocking `progress()` for sync handlers, which run in a thread."""
        self._run_from_thread(self.progress(fraction, message))

    def heartbeat_sync(self) -> None:
        """Blocking `heartbeat()` for sync handlers, which run in a thread."""
        self._run_from_thread(self.heartbeat())

    def _run_from_thread(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            coro.close()
            raise RuntimeError("progress_sync()/heartbeat_sync() are for sync handlers; use await in async ones")
        if self._loop.is_closed():  # a thread abandoned at shutdown
            coro.close()
            raise RuntimeError(f"the worker has stopped; task {self.task_id} was already reported")
        asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def __repr__(self) -> str:
        return f"<TaskContext {self.task.type} task_id={self.task_id} job_id={self.job_id}>"
