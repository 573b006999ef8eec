"""What a job commit carries besides the job record: a list of typed operations, applied atomically.

Storage applies a commit in two phases: every check first (the job's `seq`, `HoldsLease`, a required
`Withdraw`, finite numbers), then every write; a refused commit writes nothing. Each new kind of wait adds
operations here and their two phases in each backend, instead of a new branch everywhere.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .job import pack_job
from .tasks import Lease, QueueEntry


@dataclass(frozen=True)
class Enqueue:
    """Put a task in the queue of its type and requirement class."""

    entry: QueueEntry

    def wire(self) -> list[Any]:
        e = self.entry
        return ["enqueue", e.queue, repr(e.score), e.member, e.task_type, e.requirements_json]


@dataclass(frozen=True)
class Withdraw:
    """Take the job's queued task out of its queue; `required`: refuse the commit ("gone") if it was
    claimed meanwhile (a worker holding it must then be told instead)."""

    queue: str
    member: str
    required: bool = False

    def wire(self) -> list[Any]:
        return ["withdraw", self.queue, self.member, self.required]


@dataclass(frozen=True)
class HoldsLease:
    """Check: `worker_id` holds the lease of `task_id`, or the commit is refused ("lease")."""

    task_id: str
    worker_id: str

    def wire(self) -> list[Any]:
        return ["holds_lease", self.task_id, self.worker_id]


@dataclass(frozen=True)
class EndLease:
    """Delete the lease and remember `answer` for repeats of the holder's result."""

    task_id: str
    answer: str

    def wire(self) -> list[Any]:
        return ["end_lease", self.task_id, self.answer]


@dataclass(frozen=True)
class NotifyCancel:
    """Tell the worker holding a task that it was cancelled (heartbeat answer and WebSocket push)."""

    worker_id: str
    task_id: str
    job_id: str

    def wire(self) -> list[Any]:
        return ["notify_cancel", self.worker_id, self.task_id, self.job_id]


@dataclass(frozen=True)
class GrantLease:
    """Create a lease directly (native Celery task types: no queue, no poll)."""

    lease: Lease

    def wire(self) -> list[Any]:
        lease = self.lease
        return ["grant_lease", lease.task_id, lease.job_id, lease.worker_id, repr(lease.deadline), lease.task_type]


@dataclass(frozen=True)
class PublishStep:
    """Push the next step's broker message (Redis mode): the step exists if and only if the commit does."""

    key: str
    message: str

    def wire(self) -> list[Any]:
        return ["publish_step", self.key, self.message]


@dataclass(frozen=True)
class CreateJob:
    """Store a new job (a child of the committing job) with its first step: it exists if and only if the
    parent's commit does. `publish` is the first step's broker message (Redis mode), else None."""

    job: dict[str, Any]
    watch_until: float | None = None
    publish: tuple[str, str] | None = None

    def wire(self) -> list[Any]:
        key, message = self.publish if self.publish is not None else ("", "")
        watch = "" if self.watch_until is None else repr(self.watch_until)
        created = repr(float(self.job["created_at"]))
        return ["create_job", self.job["id"], pack_job(self.job), self.job["status"], created, watch, key, message]


@dataclass(frozen=True)
class StoreBranches:
    """Store the branch records of a fan-out (`dispatch_parallel`) beside the job."""

    job_id: str
    branches: dict[str, dict[str, Any]]

    def wire(self) -> list[Any]:
        flat: list[Any] = ["store_branches", self.job_id]
        for branch_id, record in self.branches.items():
            flat += [branch_id, json.dumps(record, separators=(",", ":"))]
        return flat


@dataclass(frozen=True)
class QueueWebhook:
    """Queue the completion webhook of a job that became terminal (delivered after the commit, retried
    until the receiver accepts it): queued once, because only one commit can make a job terminal."""

    job_id: str
    due: float

    def wire(self) -> list[Any]:
        return ["queue_webhook", self.job_id, repr(self.due)]


@dataclass(frozen=True)
class NotifyEnd:
    """The job became terminal: wake clients waiting for its end (`?wait`)."""

    def wire(self) -> list[Any]:
        return ["notify_end"]


Op = (
    Enqueue
    | Withdraw
    | HoldsLease
    | EndLease
    | NotifyCancel
    | GrantLease
    | PublishStep
    | CreateJob
    | StoreBranches
    | QueueWebhook
    | NotifyEnd
)


@dataclass
class JobChanges:
    """The operations of one commit, plus effects to run in this process once it succeeded (`after`)."""

    ops: list[Op] = field(default_factory=list)
    after: list[Callable[[], Any]] = field(default_factory=list)

    def add(self, *ops: Op) -> JobChanges:
        """Append operations; returns self."""
        self.ops.extend(ops)
        return self

    def of(self, kind: type[Op]) -> list[Any]:
        """The operations of one kind, in order."""
        return [op for op in self.ops if isinstance(op, kind)]

    def numbers_are_finite(self) -> bool:
        """Whether every number storage would index by is finite (a NaN score is refused before any write)."""
        numbers = [op.entry.score for op in self.of(Enqueue)] + [op.lease.deadline for op in self.of(GrantLease)]
        return all(math.isfinite(n) for n in numbers)

    def wire(self) -> list[list[Any]]:
        """The operations as JSON-ready lists, for the Redis commit script."""
        return [op.wire() for op in self.ops]
