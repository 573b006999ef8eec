"""The one error hierarchy of Avtomatika; every error carries its context in attributes."""

from __future__ import annotations

from typing import Any


class AvtomatikaError(Exception):
    """Root of every error the library raises on purpose."""

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context


class ConfigError(AvtomatikaError):
    """A setting or configuration file is invalid; raised at start so nothing runs half-configured."""


class BlueprintError(AvtomatikaError):
    """A blueprint is malformed: found when it is declared or registered."""


class ConditionSyntaxError(BlueprintError):
    """A `.when()` string does not follow the grammar; raised when the decorator runs."""


class HandlerError(AvtomatikaError):
    """A state handler could not be run or set no valid action."""


class ActionError(RuntimeError, AvtomatikaError):
    """A handler asked for a second action (the seed raises RuntimeError, so this is one)."""

    def __init__(self, message: str, **context: Any) -> None:
        AvtomatikaError.__init__(self, message, **context)


class NotFound(AvtomatikaError):
    """Something the caller named does not exist (or is not visible to it)."""


class JobNotFound(NotFound):
    """No job with that id (or not visible to the caller)."""


class WorkerNotFound(NotFound):
    """No live worker with that id: it never registered, or its record expired."""


class BlueprintNotFound(NotFound):
    """No blueprint with that name is registered."""


class TransitionNotAllowed(AvtomatikaError):
    """A status change that the transition table forbids."""


class ConflictError(AvtomatikaError):
    """A concurrent change won; the caller's view of the job is stale."""


class StaleResult(ConflictError):
    """A worker's result for a task it does not hold (the lease expired, moved or was never given)."""


class JobAlreadyEnded(ConflictError):
    """The job is terminal: it cannot be cancelled (or changed) any more."""


class NotRetryable(ConflictError):
    """Only failed or quarantined jobs can be retried by an operator."""


class NotWaiting(ConflictError):
    """The job does not wait for what the caller answers (e.g. an approval for a job not waiting for one)."""


class InvalidDecision(AvtomatikaError):
    """An approval decision that is missing or not one of the job's decisions."""


class Unauthorized(AvtomatikaError):
    """No valid credentials for this action."""


class TokensNotLoaded(AvtomatikaError):
    """Storage has no worker token table at all (it lost its data): the caller must load it again before
    trusting an answer, or a worker with its own token would fall back to the global token."""


class QuotaExceeded(AvtomatikaError):
    """The client used up its monthly job creations; `retry_after` is the seconds until the next month."""

    def __init__(self, message: str, retry_after: float, **context: Any) -> None:
        super().__init__(message, **context)
        self.retry_after = retry_after


class Unsupported(AvtomatikaError):
    """The server cannot do this here (a missing optional binary, for example)."""


class Unavailable(AvtomatikaError):
    """A backing service (the history database) does not answer right now; try again later."""
