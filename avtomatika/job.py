"""The job record, its statuses and the table of allowed status moves.

Every status write goes through `set_status`, which checks the table; storage then commits the whole record
with a compare-and-set on `seq`, so two concurrent writers can never both apply.
"""

from __future__ import annotations

import json
import time
import uuid
from enum import Enum
from typing import Any

from .errors import TransitionNotAllowed

Job = dict[str, Any]


class JobStatus(str, Enum):
    """Where a job is in its life; the last four are terminal."""

    PENDING = "pending"
    RUNNING = "running"
    WAITING_FOR_WORKER = "waiting_for_worker"
    WAITING_FOR_HUMAN = "waiting_for_human"
    WAITING_FOR_PARALLEL_TASKS = "waiting_for_parallel_tasks"
    WAITING_FOR_SUB_JOB = "waiting_for_sub_job"
    AWAITING_RETRY = "awaiting_retry"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"
    QUARANTINED = "quarantined"

    @property
    def is_terminal(self) -> bool:
        """True for statuses that never change again (but for operator actions)."""
        return self in TERMINAL


JOB_STATUSES = tuple(status.value for status in JobStatus)
TERMINAL = frozenset({JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.QUARANTINED})
_WAITING = frozenset(
    {
        JobStatus.WAITING_FOR_WORKER,
        JobStatus.WAITING_FOR_HUMAN,
        JobStatus.WAITING_FOR_PARALLEL_TASKS,
        JobStatus.WAITING_FOR_SUB_JOB,
    }
)
_ENDINGS = frozenset({JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.QUARANTINED})

ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset({JobStatus.RUNNING}) | _ENDINGS,
    JobStatus.RUNNING: frozenset({JobStatus.RUNNING, JobStatus.AWAITING_RETRY, JobStatus.FINISHED})
    | _WAITING
    | _ENDINGS,
    JobStatus.AWAITING_RETRY: frozenset({JobStatus.RUNNING, JobStatus.WAITING_FOR_WORKER}) | _ENDINGS,
    **{waiting: frozenset({JobStatus.RUNNING, JobStatus.AWAITING_RETRY, waiting}) | _ENDINGS for waiting in _WAITING},
    **{terminal: frozenset() for terminal in TERMINAL},
}
# Operator actions (SPEC §7) are the only way out of a terminal status.
OPERATOR_ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.FAILED: frozenset({JobStatus.PENDING}),
    JobStatus.QUARANTINED: frozenset({JobStatus.PENDING}),
}


def can_move(current: JobStatus, new: JobStatus, *, operator: bool = False) -> bool:
    """Whether the table allows `current` → `new` (operator actions have their own table)."""
    table = OPERATOR_ALLOWED if operator else ALLOWED
    return new in table.get(current, frozenset())


def set_status(job: Job, new: JobStatus, *, now: float | None = None, operator: bool = False) -> None:
    """Change the status of `job` in place, or raise `TransitionNotAllowed`."""
    current = JobStatus(job["status"])
    if not can_move(current, new, operator=operator):
        raise TransitionNotAllowed(
            f"job {job['id']}: status {current.value} cannot become {new.value}",
            job_id=job["id"],
            current=current.value,
            new=new.value,
        )
    stamp = time.time() if now is None else now
    job["status"] = new.value
    job["updated_at"] = stamp
    if new in TERMINAL:
        job["finished_at"] = stamp
    elif operator:
        job["finished_at"] = None


def new_job(
    blueprint_name: str,
    start_state: str,
    initial_data: dict[str, Any],
    client_id: str,
    *,
    webhook_url: str | None = None,
    dispatch_timeout: float | None = None,
    result_timeout: float | None = None,
    now: float | None = None,
) -> Job:
    """A fresh `pending` job record at its blueprint's start state."""
    stamp = time.time() if now is None else now
    return {
        "id": str(uuid.uuid4()),
        "blueprint_name": blueprint_name,
        "status": JobStatus.PENDING.value,
        "current_state": start_state,
        "initial_data": initial_data,
        "state_history": {},
        "error_message": None,
        "retry_count": 0,
        "transitions": 0,
        "created_at": stamp,
        "updated_at": stamp,
        "finished_at": None,
        "client_id": client_id,
        "client": {"client_id": client_id, "plan": "default", "params": {}},
        "wait": None,
        "webhook_url": webhook_url,
        "dispatch_timeout": dispatch_timeout,
        "result_timeout": result_timeout,
        "seq": 0,
    }


PUBLIC_FIELDS = (
    "id",
    "blueprint_name",
    "status",
    "current_state",
    "initial_data",
    "state_history",
    "error_message",
    "retry_count",
    "created_at",
    "updated_at",
    "finished_at",
)

# Where a quarantined job's last handler traceback is: the view never shows it (it may hold secrets).
TRACEBACK_HINT = (
    "the last handler traceback is in the server log (logger 'avtomatika.core', level ERROR, line 'job <id> "
    "quarantined ...') and kept in the job record as error_traceback"
)


def job_view(job: Job, worker_id: str | None = None, progress: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the API shows of a job: no owner id, no tokens, no internal counters.

    While the job waits for a worker it also shows the current task (`task_id`, `task_type`, the holding
    `worker_id` or None while queued) and the last progress event.
    """
    view = {name: job.get(name) for name in PUBLIC_FIELDS}
    if job.get("error_traceback"):
        view["traceback_hint"] = TRACEBACK_HINT
    if job.get("parent_id"):
        view["parent_job_id"] = job["parent_id"]
    wait = job.get("wait")
    if isinstance(wait, dict) and wait.get("kind") == "child":
        view["child_job_id"] = wait["child_id"]
    task = wait if isinstance(wait, dict) and wait.get("kind") == "task" else None
    if task and job["status"] == JobStatus.WAITING_FOR_WORKER.value:
        view["task_id"], view["task_type"], view["worker_id"] = task["task_id"], task["task_type"], worker_id
        view["progress"] = progress
    return view


# Fields a stored record leaves out while they hold their default (restored when read): a job waiting for a
# decision takes about a third less memory. `id` and `seq` are kept beside the record by every backend.
_PACKED_DEFAULTS: dict[str, Any] = {
    "error_message": None,
    "finished_at": None,
    "webhook_url": None,
    "dispatch_timeout": None,
    "result_timeout": None,
    "retry_count": 0,
    "transitions": 0,
    "state_history": {},
    "wait": None,
}


def _default_client(job: Job) -> dict[str, Any]:
    return {"client_id": job.get("client_id"), "plan": "default", "params": {}}


def pack_job(job: Job) -> str:
    """The stored form of a job record: compact JSON without `id`, `seq` and fields at their default."""
    record = {
        k: v
        for k, v in job.items()
        if k not in ("id", "seq") and not (k in _PACKED_DEFAULTS and v == _PACKED_DEFAULTS[k])
    }
    if record.get("client") == _default_client(job):
        del record["client"]
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def unpack_job(text: str | bytes, job_id: str, seq: int) -> Job:
    """A job record from its stored form (see `pack_job`)."""
    job: Job = json.loads(text)
    job["id"] = job_id
    job["seq"] = seq
    for name, default in _PACKED_DEFAULTS.items():
        if name not in job:
            job[name] = {} if isinstance(default, dict) else default
    job.setdefault("client", _default_client(job))
    return job
