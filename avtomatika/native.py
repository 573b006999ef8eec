"""Native task types: a Python function registered with `engine.task_type(...)` runs as a Celery task and
its return value or exception goes through the same result path as an HTTP worker's result."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .aio import run_coroutine
from .tasks import NATIVE_WORKER
from .worker.errors import ErrorCode
from .worker.results import failure, result_from_exception, result_from_value

if TYPE_CHECKING:  # pragma: no cover
    from .engine import OrchestratorEngine

logger = logging.getLogger(__name__)


def run_native_task(
    engine: OrchestratorEngine, job_id: str, task_id: str, task_type: str, params: dict[str, Any]
) -> str:
    """Run the registered function and report its outcome; returns the answer (or why it was refused)."""
    spec = engine.native_tasks.get(task_type)
    job = engine.storage.get_job(job_id)
    attempt = ((job or {}).get("task") or {}).get("attempt", 1)
    available = {"params": params, "job_id": job_id, "task_id": task_id, "attempt": attempt}
    if spec is None:
        outcome = failure(f"no native task type {task_type!r} is registered on this worker", ErrorCode.PERMANENT)
    else:
        try:
            kwargs = {p.name: available[p.name] for p in spec.parameters if p.name in available}
            missing = [p.name for p in spec.parameters if p.name not in available and not p.has_default]
            if missing:
                raise TypeError(f"native task {task_type!r}: cannot inject {', '.join(missing)}")
            value = run_coroutine(spec.func(**kwargs)) if spec.is_async else spec.func(**kwargs)
            outcome = result_from_value(value)
        except Exception as exc:
            logger.info("native task %s (%s) raised %s: %s", task_type, task_id, type(exc).__name__, exc)
            outcome = result_from_exception(exc)
    status, answer = engine.events.accept_result(job_id, task_id, NATIVE_WORKER, outcome.to_payload())
    return str(answer.get("status") or answer.get("error"))
