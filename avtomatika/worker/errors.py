"""Errors of the worker SDK: outcomes a handler raises, and answers of the orchestrator the runtime acts on.

Everything is rooted in `AvtomatikaError`, like the rest of the library.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from ..errors import AvtomatikaError


class ErrorCode(str, Enum):
    """The three infrastructure error codes of the protocol (SPEC §4); they steer the orchestrator's retries."""

    TRANSIENT = "TRANSIENT_ERROR"
    PERMANENT = "PERMANENT_ERROR"
    INVALID_INPUT = "INVALID_INPUT_ERROR"


class WorkerError(AvtomatikaError):
    """The SDK was misused or misconfigured (duplicate task type, bad URL, token refused at registration)."""


# --- outcomes raised by task handlers -------------------------------------------------------------------------


class TaskFailure(AvtomatikaError):
    """The task failed in a way the blueprint may handle: sent as status `failure` without an error code.

    Args:
        message: Why it failed; sent as `error.message`.
        data: Optional dict sent as the result's `data` (the orchestrator merges it into `state_history`).
    """

    code: ErrorCode | None = None

    def __init__(self, message: str, data: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.data: dict[str, Any] = dict(data or {})


class WorkerTaskError(TaskFailure):
    """A failure with an infrastructure error code; use one of the three subclasses."""

    code: ErrorCode | None = ErrorCode.TRANSIENT


class TransientError(WorkerTaskError):
    """A temporary fault (network, rate limit, out of memory): the orchestrator retries the task with backoff."""

    code = ErrorCode.TRANSIENT


class PermanentError(WorkerTaskError):
    """A fault that retrying will not fix (corrupt file): the job is quarantined at once."""

    code = ErrorCode.PERMANENT


class InvalidInputError(WorkerTaskError):
    """The task's params are wrong: the job fails at once."""

    code = ErrorCode.INVALID_INPUT


class TaskCancelled(AvtomatikaError):
    """Raised by `TaskContext.raise_if_cancelled()`; the task is reported with status `cancelled`."""


# --- answers of the orchestrator ---------------------------------------------------------------------------------


class OrchestratorError(AvtomatikaError):
    """An orchestrator request did not succeed.

    Attributes:
        url: Base URL of the orchestrator that answered (or could not be reached).
        status_code: HTTP status, or None when no answer arrived.
    """

    def __init__(self, message: str, *, url: str, status_code: int | None = None, **context: Any) -> None:
        super().__init__(message, url=url, status_code=status_code, **context)
        self.url = url
        self.status_code = status_code


class OrchestratorUnavailable(OrchestratorError):
    """No usable answer: connection error, timeout, 5xx or a malformed body.

    The client has already made the next URL current. `all_failed` is False while some URL has not failed
    since the last success (retry there at once), True when the caller should back off.
    """

    def __init__(self, message: str, *, url: str, status_code: int | None = None, all_failed: bool = True) -> None:
        super().__init__(message, url=url, status_code=status_code)
        self.all_failed = all_failed


class RateLimited(OrchestratorError):
    """429: wait `retry_after` seconds (None when the server gave no usable Retry-After)."""

    def __init__(self, message: str, *, url: str, retry_after: float | None) -> None:
        super().__init__(message, url=url, status_code=429)
        self.retry_after = retry_after


class WorkerUnknown(OrchestratorError):
    """404 for a heartbeat or poll: the orchestrator forgot this worker, so the runtime registers again."""


class StaleResult(OrchestratorError):
    """409 for a result: the lease moved on (late, cancelled elsewhere, or not ours). Never retried."""


class RequestRejected(OrchestratorError):
    """Any other 4xx (401 bad token, 403 wrong worker id, 400 bad body): an error of the worker, not retried.

    Attributes:
        error: The `error` field of the JSON error body.
        details: The `details` field of the JSON error body.
    """

    def __init__(self, message: str, *, url: str, status_code: int, error: str, details: Any) -> None:
        super().__init__(message, url=url, status_code=status_code)
        self.error = error
        self.details = details
