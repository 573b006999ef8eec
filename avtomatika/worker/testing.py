"""Run a task handler without an orchestrator: for the unit tests of worker code.

    from avtomatika.worker.testing import run_task

    run = run_task(worker, "resize", {"url": "s3://a.png", "width": 64})
    assert run.result == {"status": "success", "data": {"thumbnail": "s3://a.64.png"}}
    assert run.progress == [(0.5, "downloaded")]

`run.result` is exactly the `result` object the runtime would POST (same code path: injection, sync handlers in
a thread, error mapping, cancellation), and `run.body` the whole request body.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .context import Task, TaskContext
from .handlers import run_handler
from .results import result_body
from .worker import Worker


@dataclass
class TaskRun:
    """The outcome of one harness run.

    Attributes:
        result: The `result` object as it would be POSTed: ``{"status", "data"[, "error"]}``.
        body: The whole body of ``POST /_worker/tasks/result``.
        progress: ``(fraction, message)`` of every ``ctx.progress()`` call, in order.
        heartbeats: How many times the handler called ``ctx.heartbeat()``.
    """

    result: dict[str, Any]
    body: dict[str, Any]
    progress: list[tuple[float, str]] = field(default_factory=list)
    heartbeats: int = 0

    @property
    def status(self) -> str:
        """`result["status"]`."""
        return str(self.result["status"])

    @property
    def data(self) -> dict[str, Any]:
        """`result["data"]`."""
        data: dict[str, Any] = self.result["data"]
        return data

    @property
    def error(self) -> dict[str, Any] | None:
        """`result.get("error")`."""
        error: dict[str, Any] | None = self.result.get("error")
        return error


class RecordingReporter:
    """Records progress and heartbeats; cancels the task after `cancel_after_progress` progress calls."""

    def __init__(self, cancel_after_progress: int | None = None) -> None:
        self.progress: list[tuple[float, str]] = []
        self.heartbeats = 0
        self.cancel_after_progress = cancel_after_progress
        self.ctx: TaskContext | None = None

    async def report_progress(self, task: Task, fraction: float, message: str) -> None:
        """Record one progress update."""
        self.progress.append((fraction, message))
        limit = self.cancel_after_progress
        if self.ctx is not None and limit is not None and len(self.progress) >= limit:
            self.ctx.mark_cancelled()

    async def heartbeat(self) -> None:
        """Count one heartbeat."""
        self.heartbeats += 1


async def run_task_async(
    worker: Worker,
    task_type: str,
    params: Mapping[str, Any] | None = None,
    *,
    job_id: str = "job-1",
    task_id: str = "task-1",
    attempt: int = 1,
    deadline: float | None = None,
    priority: float = 0.0,
    tracing_context: Any = None,
    cancelled: bool = False,
    cancel_after_progress: int | None = None,
) -> TaskRun:
    """Run the handler `worker` has for `task_type` on `params` and return what would be reported.

    Args:
        worker: The worker whose handler runs (it is not started; nothing is sent).
        task_type: A task type registered on `worker` (`WorkerError` otherwise).
        params: The task's params.
        job_id: The task's job id.
        task_id: The task's id.
        attempt: The attempt number the handler sees.
        deadline: The deadline (epoch seconds) the handler sees.
        priority: The priority the handler sees.
        tracing_context: The tracing context the handler sees.
        cancelled: Start with the task already cancelled.
        cancel_after_progress: Cancel the task once the handler has reported progress this many times.
    """
    handler = worker.handler(task_type)
    task = Task(
        job_id=job_id,
        task_id=task_id,
        type=task_type,
        params=dict(params or {}),
        priority=priority,
        deadline=deadline,
        attempt=attempt,
        tracing_context=tracing_context,
    )
    reporter = RecordingReporter(cancel_after_progress)
    ctx = TaskContext(task, reporter)
    reporter.ctx = ctx
    if cancelled:
        ctx.mark_cancelled()
    result = await run_handler(handler, ctx)
    body = result_body(job_id, task_id, worker.worker_id, result)
    return TaskRun(body["result"], body, reporter.progress, reporter.heartbeats)


def run_task(worker: Worker, task_type: str, params: Mapping[str, Any] | None = None, **options: Any) -> TaskRun:
    """Blocking `run_task_async()` for plain (non-async) tests; takes the same keyword options."""
    return asyncio.run(run_task_async(worker, task_type, params, **options))
