"""Task outcomes and the exact JSON the runtime POSTs to `/_worker/tasks/result`.

The runtime and the test harness both build results here, so a test sees what the orchestrator would receive.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ErrorCode, TaskCancelled, TaskFailure

logger = logging.getLogger(__name__)

SUCCESS = "success"
FAILURE = "failure"
CANCELLED = "cancelled"

_ENVELOPE_KEYS = frozenset({"status", "data", "error"})


@dataclass(frozen=True)
class TaskResult:
    """What a task produced: a status, a `data` dict and, for failures, an error.

    Return ``TaskResult("needs_review", {"score": 0.4})`` from a handler to take the blueprint's
    ``transitions["needs_review"]``; a plain dict return is shorthand for ``TaskResult("success", that_dict)``.

    Args:
        status: `success`, `failure`, `cancelled` or a custom status the blueprint's transitions name.
        data: JSON-serializable dict; the orchestrator merges it into the job's `state_history`.
        error: ``{"code": ..., "message": ...}`` (code optional); only meaningful with status `failure`.
    """

    status: str
    data: Mapping[str, Any] = field(default_factory=dict)
    error: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.status, str) or not self.status:
            raise TypeError(f"TaskResult status must be a non-empty string, got {self.status!r}")
        if not isinstance(self.data, Mapping):
            raise TypeError(f"TaskResult data must be a dict, got {type(self.data).__name__}")

    def to_payload(self) -> dict[str, Any]:
        """The `result` object of the result request: ``{"status", "data"[, "error"]}``."""
        payload: dict[str, Any] = {"status": self.status, "data": dict(self.data)}
        if self.error is not None:
            payload["error"] = dict(self.error)
        return payload


def failure(message: str, code: ErrorCode | None = None, data: Mapping[str, Any] | None = None) -> TaskResult:
    """A `failure` result, with an error code or (code None) one the blueprint may handle."""
    error: dict[str, Any] = {"message": message}
    if code is not None:
        error = {"code": code.value, "message": message}
    return TaskResult(FAILURE, dict(data or {}), error)


def cancelled() -> TaskResult:
    """The result of a task the orchestrator cancelled while it ran."""
    return TaskResult(CANCELLED, {})


def result_from_value(value: Any) -> TaskResult:
    """Turn a handler's return value into a result.

    `None` is an empty success; a `TaskResult` is taken as is; a dict whose keys are only `status`, `data` and
    `error` with a string `status` is a result envelope (the original SDK's convention); any other dict is the
    `data` of a success. Anything else, or data that is not JSON-serializable, is a `PERMANENT_ERROR`: the same
    code would fail the same way on every retry.
    """
    if value is None:
        result = TaskResult(SUCCESS, {})
    elif isinstance(value, TaskResult):
        result = value
    elif isinstance(value, Mapping):
        result = _from_mapping(value)
    else:
        return failure(
            f"handler returned {type(value).__name__}; return a dict, a TaskResult or None", ErrorCode.PERMANENT
        )
    return _checked(result)


def _from_mapping(value: Mapping[str, Any]) -> TaskResult:
    if not (value.keys() <= _ENVELOPE_KEYS and isinstance(value.get("status"), str)):
        return TaskResult(SUCCESS, dict(value))
    data = value.get("data") or {}
    error = value.get("error")
    if not isinstance(data, Mapping):
        return failure(f"handler returned data of type {type(data).__name__}; it must be a dict", ErrorCode.PERMANENT)
    if error is not None and not _valid_error(error):
        return failure(f"handler returned a malformed error {error!r}", ErrorCode.PERMANENT)
    return TaskResult(value["status"], dict(data), error)


def _valid_error(error: Any) -> bool:
    if not isinstance(error, Mapping) or not isinstance(error.get("message", ""), str):
        return False
    code = error.get("code")
    return code is None or code in {c.value for c in ErrorCode}


def _checked(result: TaskResult) -> TaskResult:
    try:
        # Same settings as httpx's JSON encoder (which then encodes to UTF-8), so what passes here is what gets
        # sent: a lone surrogate (from `os.fsdecode`, say) fails here, not in the middle of the request.
        json.dumps(result.to_payload(), ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        return failure(f"result is not JSON-serializable: {exc}", ErrorCode.PERMANENT)
    return result


def result_from_exception(exc: BaseException) -> TaskResult:
    """Map an exception raised by a handler to a result.

    `TaskCancelled` is `cancelled`; `TaskFailure` (no code) and the `WorkerTaskError` subclasses carry their
    message, data and code; any other exception is a `TRANSIENT_ERROR` naming its type and message, so the
    orchestrator retries it.
    """
    if isinstance(exc, TaskCancelled):
        return cancelled()
    if isinstance(exc, TaskFailure):
        return _checked(failure(exc.message, exc.code, exc.data))
    text = str(exc)
    message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return failure(message, ErrorCode.TRANSIENT)


def result_body(job_id: str, task_id: str, worker_id: str, result: TaskResult) -> dict[str, Any]:
    """The full JSON body of ``POST /_worker/tasks/result``."""
    return {"job_id": job_id, "task_id": task_id, "worker_id": worker_id, "result": result.to_payload()}
