"""What a waiting job waits for: one typed record in `job["wait"]` (None while the job runs or has ended).

A job waits for one thing at a time: a worker task, its parallel branches, a human decision, or a child job.
Each kind is a `TypedDict` with a `kind` tag; code that handles one kind asks for it with `wait_of`, so a
new kind is an addition, not a new branch in every place that reads the job.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict, TypeGuard

from .job import Job


class TaskWait(TypedDict, total=False):
    """A worker task (HTTP worker or native Celery task type); one attempt per `task_id`."""

    kind: Literal["task"]
    task_id: str
    task_type: str
    params: dict[str, Any]
    transitions: dict[str, str]
    priority: float
    timeout: float
    requirements: dict[str, Any] | None
    strategy: str
    attempt: int
    dispatched_at: float
    member: str  # the queue member while queued (HTTP workers)
    queue: str
    native: bool  # a native Celery task type
    retry: bool  # the last attempt failed; the next step dispatches it again


class ApprovalWait(TypedDict, total=False):
    """A human decision (`await_human_approval`)."""

    kind: Literal["approval"]
    integration: str
    message: str
    transitions: dict[str, str]
    token_hash: str
    requested_at: float
    deadline: float | None


class ChildWait(TypedDict, total=False):
    """A child job (`run_blueprint`)."""

    kind: Literal["child"]
    child_id: str
    blueprint: str
    transitions: dict[str, str]


class BranchesWait(TypedDict, total=False):
    """The branches of a fan-out (`dispatch_parallel`); their records and outcomes live beside the job."""

    kind: Literal["branches"]
    group_id: str
    aggregate_into: str
    total: int


Wait = TaskWait | ApprovalWait | ChildWait | BranchesWait


def is_task(wait: Any) -> TypeGuard[TaskWait]:
    """Whether `wait` is a worker task."""
    return isinstance(wait, dict) and wait.get("kind") == "task"


def current_task(job: Job) -> TaskWait | None:
    """The worker task the job waits for (or will dispatch again after a failed attempt), else None."""
    wait = job.get("wait")
    return wait if is_task(wait) else None


def wait_of(job: Job, kind: str) -> dict[str, Any] | None:
    """The job's wait record if it is of `kind`, else None."""
    wait = job.get("wait")
    return wait if isinstance(wait, dict) and wait.get("kind") == kind else None
