"""What a worker's result does to a job: the outcome table of SPEC §4, as one pure function."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from .blueprint import StateMachineBlueprint
from .config import Config
from .job import Job, JobStatus, set_status
from .stream import TASK_FINISHED, TASK_RETRY, TASK_TIMEOUT
from .transitions import enter_state, fail
from .waits import current_task

SUCCESS = "result_accepted_success"
FAILURE = "result_accepted_failure"
CANCELLED = "result_accepted_cancelled"
TRANSIENT_ERROR = "TRANSIENT_ERROR"
PERMANENT_ERROR = "PERMANENT_ERROR"
INVALID_INPUT_ERROR = "INVALID_INPUT_ERROR"
ERROR_CODES = frozenset({TRANSIENT_ERROR, PERMANENT_ERROR, INVALID_INPUT_ERROR})


@dataclass(frozen=True)
class Outcome:
    """The answer for the worker and what the engine does next.

    `next` is "step" (the job runs its new state), "retry" (the task is dispatched again after `delay`)
    or "none" (the job ended).
    """

    answer: str
    next: str
    delay: float = 0.0


def retry_delay(attempt: int, base: float) -> float:
    """Exponential backoff with jitter: attempt 1 waits 0.5–1 × base, then doubling, capped at 60 × base."""
    return float(min(base * 2 ** (attempt - 1), 60 * base) * random.uniform(0.5, 1.0))


def _move(job: Job, blueprint: StateMachineBlueprint, target: str, config: Config, cause: str) -> None:
    enter_state(job, blueprint, target, config, cause=cause)


def _merge(job: Job, data: dict[str, Any]) -> None:
    job["state_history"].update(data)


def _ended(job: Job, status: JobStatus, message: str) -> None:
    fail(job, message, status)


def apply_result(job: Job, result: dict[str, Any], blueprint: StateMachineBlueprint, config: Config) -> Outcome:
    """Apply a validated worker result to `job` (in memory) and say what happens next."""
    task = current_task(job)
    assert task is not None, "apply_result needs a job waiting for a task"
    transitions: dict[str, str] = task.get("transitions") or {}
    status = result.get("status") or "success"
    data = result.get("data") or {}
    error = result.get("error") or {}
    label = f"task {task['task_type']} ({task['task_id']})"

    if status == "cancelled":
        if "cancelled" in transitions:
            _merge(job, data)
            _move(job, blueprint, transitions["cancelled"], config, f"{label} was cancelled by the worker")
            return Outcome(CANCELLED, "step" if job["status"] == JobStatus.RUNNING.value else "none")
        _ended(job, JobStatus.CANCELLED, f"{label} was cancelled by the worker")
        return Outcome(CANCELLED, "none")

    if status == "failure":
        code = error.get("code")
        message = error.get("message") or "no message"
        if code is None and "failure" in transitions:
            _merge(job, data)
            job["state_history"]["error"] = error
            _move(job, blueprint, transitions["failure"], config, f"{label} failed: {message}")
            return Outcome(FAILURE, "step" if job["status"] == JobStatus.RUNNING.value else "none")
        if code == PERMANENT_ERROR:
            _ended(job, JobStatus.QUARANTINED, f"{label} failed with PERMANENT_ERROR: {message}")
            return Outcome(FAILURE, "none")
        if code == INVALID_INPUT_ERROR:
            _ended(job, JobStatus.FAILED, f"{label} failed with INVALID_INPUT_ERROR: {message}")
            return Outcome(FAILURE, "none")
        attempt = int(task.get("attempt", 1))
        reason = f"{label} failed with {code or 'failure'}: {message}"
        if attempt > config.JOB_MAX_RETRIES:
            _ended(job, JobStatus.QUARANTINED, f"{reason} (quarantined after {config.JOB_MAX_RETRIES} retries)")
            return Outcome(FAILURE, "none")
        task["retry"] = True
        job["retry_count"] = attempt
        job["error_message"] = reason
        set_status(job, JobStatus.AWAITING_RETRY)
        return Outcome(FAILURE, "retry", retry_delay(attempt, config.TASK_RETRY_BASE_SECONDS))

    if status == "success" or status in transitions:
        target = transitions.get(status)
        _merge(job, data)
        if target is None:
            _ended(job, JobStatus.FAILED, f"{label} succeeded but its transitions have no 'success' key")
            return Outcome(SUCCESS, "none")
        _move(job, blueprint, target, config, f"{label} returned {status!r}")
        return Outcome(SUCCESS, "step" if job["status"] == JobStatus.RUNNING.value else "none")

    _ended(job, JobStatus.FAILED, f"{label} returned status {status!r}, which is not a key of its transitions")
    return Outcome(SUCCESS, "none")


def attempt_events(
    task: dict[str, Any], state: str, worker_id: str, result: dict[str, Any], *, timed_out: bool, retried: bool
) -> list[tuple[str, dict[str, Any]]]:
    """The stream events of one worker attempt's result (see `avtomatika.stream`): `task_finished` with its
    outcome (`task_timeout` when the lease expired), then `task_retry` when the task goes out again."""
    status = result.get("status") or "success"
    outcome = "timeout" if timed_out else status if status in ("failure", "cancelled") else "success"
    error = result.get("error") or None
    started = float(task.get("dispatched_at") or time.time())
    fields: dict[str, Any] = {
        "state": state,
        "task_id": task["task_id"],
        "worker_id": worker_id,
        "attempt": int(task.get("attempt", 1)),
        "duration_ms": max(0, round((time.time() - started) * 1000)),
        "outcome": outcome,
        "details": {"task_type": task["task_type"], "status": status, "error": error},
    }
    events = [(TASK_TIMEOUT if timed_out else TASK_FINISHED, fields)]
    if retried:
        again = {"task_type": task["task_type"], "failed_attempt": fields["attempt"]}
        events.append((TASK_RETRY, {"state": state, "task_id": task["task_id"], "details": again}))
    return events
