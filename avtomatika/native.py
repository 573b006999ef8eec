"""Native task types: a Python function registered with `engine.task_type(...)` runs as a Celery task and
its return value or exception becomes a worker result (`Orchestrator.run_native_task` reports it)."""

from __future__ import annotations

import logging
from typing import Any

from .aio import run_coroutine
from .injection import HandlerSpec
from .worker.errors import ErrorCode
from .worker.results import TaskResult, failure, result_from_exception, result_from_value

logger = logging.getLogger(__name__)


def native_outcome(spec: HandlerSpec | None, task_type: str, available: dict[str, Any]) -> TaskResult:
    """Run the registered function with the arguments it names from `available`; its outcome as a result."""
    if spec is None:
        return failure(f"no native task type {task_type!r} is registered on this worker", ErrorCode.PERMANENT)
    try:
        kwargs = {p.name: available[p.name] for p in spec.parameters if p.name in available}
        missing = [p.name for p in spec.parameters if p.name not in available and not p.has_default]
        if missing:
            raise TypeError(f"native task {task_type!r}: cannot inject {', '.join(missing)}")
        value = run_coroutine(spec.func(**kwargs)) if spec.is_async else spec.func(**kwargs)
        return result_from_value(value)
    except Exception as exc:
        logger.info("native task %s raised %s: %s", task_type, type(exc).__name__, exc)
        return result_from_exception(exc)
