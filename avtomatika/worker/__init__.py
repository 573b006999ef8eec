"""The worker SDK: write HTTP workers for an Avtomatika orchestrator (SPEC §4), no Flask or Celery needed.

    from avtomatika.worker import Worker

    worker = Worker("resizer-1", "http://localhost:8080", token="...")

    @worker.task("resize")
    async def resize(params, ctx):
        await ctx.progress(0.5, "downloaded")
        return {"thumbnail": params["url"] + ".64.png"}

    worker.run()

See docs/worker-sdk.md.
"""

from .backoff import BackoffPolicy
from .context import Task, TaskContext
from .errors import (
    ErrorCode,
    InvalidInputError,
    OrchestratorError,
    OrchestratorUnavailable,
    PermanentError,
    RateLimited,
    RequestRejected,
    StaleResult,
    TaskCancelled,
    TaskFailure,
    TransientError,
    WorkerError,
    WorkerTaskError,
    WorkerUnknown,
)
from .results import TaskResult
from .worker import GpuInfo, InstalledModel, Resources, Worker

__all__ = [
    "BackoffPolicy",
    "ErrorCode",
    "GpuInfo",
    "InstalledModel",
    "InvalidInputError",
    "OrchestratorError",
    "OrchestratorUnavailable",
    "PermanentError",
    "RateLimited",
    "RequestRejected",
    "Resources",
    "StaleResult",
    "Task",
    "TaskCancelled",
    "TaskContext",
    "TaskFailure",
    "TaskResult",
    "TransientError",
    "Worker",
    "WorkerError",
    "WorkerTaskError",
    "WorkerUnknown",
]
