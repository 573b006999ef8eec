"""The job event stream: every committed change becomes typed events, handed to subscribers after the commit.

The core builds `JobEvent`s while it decides (a step, a worker result, a cancel, a timeout, the sweep, an
approval, a child job, a fan-out or fan-in) and emits them only once the commit that made them true has
succeeded; worker registrations, status updates and expiries are `WorkerEvent`s. Side effects (history,
metrics, tracing, completion webhooks) subscribe to the stream; the core never calls them by name.

    engine.stream.subscribe(lambda event: print(event.kind, event.job_id))
    engine.stream.subscribe(on_end, kinds=JOB_ENDS.values())  # only some kinds

A subscriber is a callable taking one event, or an object with `handle(event)`. It runs in the process
and thread that made the change, so it must be quick (buffer, then work elsewhere); an exception in it is
logged and never fails the job or the other subscribers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

logger = logging.getLogger(__name__)

# Event kinds (SPEC §6), in the order a job usually meets them.
JOB_CREATED = "job_created"
STATE_STARTED = "state_started"
STATE_FINISHED = "state_finished"
STATE_FAILED = "state_failed"
TASK_DISPATCHED = "task_dispatched"
TASK_STARTED = "task_started"
TASK_FINISHED = "task_finished"
TASK_RETRY = "task_retry"
TASK_TIMEOUT = "task_timeout"
BRANCH_FINISHED = "branch_finished"
APPROVAL_REQUESTED = "approval_requested"
APPROVAL_RECEIVED = "approval_received"
SUB_JOB_STARTED = "sub_job_started"
SUB_JOB_FINISHED = "sub_job_finished"
JOB_FINISHED = "job_finished"
JOB_FAILED = "job_failed"
JOB_CANCELLED = "job_cancelled"
JOB_QUARANTINED = "job_quarantined"
JOB_KINDS = (
    JOB_CREATED,
    STATE_STARTED,
    STATE_FINISHED,
    STATE_FAILED,
    TASK_DISPATCHED,
    TASK_STARTED,
    TASK_FINISHED,
    TASK_RETRY,
    TASK_TIMEOUT,
    BRANCH_FINISHED,
    APPROVAL_REQUESTED,
    APPROVAL_RECEIVED,
    SUB_JOB_STARTED,
    SUB_JOB_FINISHED,
    JOB_FINISHED,
    JOB_FAILED,
    JOB_CANCELLED,
    JOB_QUARANTINED,
)
# The event of each terminal status.
JOB_ENDS = {
    "finished": JOB_FINISHED,
    "failed": JOB_FAILED,
    "cancelled": JOB_CANCELLED,
    "quarantined": JOB_QUARANTINED,
}
WORKER_REGISTERED = "registered"
WORKER_STATUS_UPDATE = "status_update"
WORKER_EXPIRED = "expired"
WORKER_KINDS = (WORKER_REGISTERED, WORKER_STATUS_UPDATE, WORKER_EXPIRED)


@dataclass(frozen=True)
class JobEvent:
    """Something that happened to a job, true once the commit `seq` (the job's commit counter) succeeded.

    Attributes:
        kind: one of `JOB_KINDS`.
        job_id, blueprint: the job and its blueprint's name.
        state: the blueprint state the event is about (for `state_finished`, the state that ran).
        status: the job's status after the commit.
        seq: the job's commit counter after the commit (events between commits carry the last one).
        timestamp: epoch seconds, microsecond resolution, taken when the event was built.
        previous_state, next_state, duration_ms, worker_id, task_id, attempt: set where they apply.
        outcome: of a worker's attempt: `success`, `failure`, `cancelled` or `timeout`.
        details: anything else worth keeping (JSON-ready, never a token).
    """

    kind: str
    job_id: str
    blueprint: str
    state: str | None
    status: str
    seq: int
    timestamp: float = field(default_factory=time.time)
    previous_state: str | None = None
    next_state: str | None = None
    duration_ms: int | None = None
    worker_id: str | None = None
    task_id: str | None = None
    attempt: int | None = None
    outcome: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkerEvent:
    """A worker registered (`registered`), reported its status (`status_update`) or expired (`expired`).

    `snapshot` is the worker record as stored (never a token).
    """

    kind: str
    worker_id: str
    timestamp: float = field(default_factory=time.time)
    snapshot: Mapping[str, Any] = field(default_factory=dict)


Event = JobEvent | WorkerEvent


@runtime_checkable
class Subscriber(Protocol):
    """An object that receives every event of the stream."""

    def handle(self, event: Event) -> None:
        """Called once per event, after the commit that made it true."""


class EventStream:
    """Hands every emitted event to every subscriber, in subscription order."""

    def __init__(self) -> None:
        self._subscribers: tuple[tuple[Callable[[Event], None], frozenset[str] | None], ...] = ()
        self._wanted: frozenset[str] | None = frozenset()  # the kinds anybody listens to (None: every kind)
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        """True when anybody listens (building events can be skipped otherwise)."""
        return bool(self._subscribers)

    def wants(self, kind: str) -> bool:
        """True when a subscriber listens to events of `kind` (an event that costs a read is built only then)."""
        wanted = self._wanted
        return wanted is None or kind in wanted

    def subscribe(
        self, subscriber: Subscriber | Callable[[Event], None], kinds: Iterable[str] | None = None
    ) -> Callable[[], None]:
        """Add a subscriber (a callable or an object with `handle`), to every event or only to `kinds`;
        returns a function that removes it."""
        call: Callable[[Event], None] = subscriber.handle if isinstance(subscriber, Subscriber) else subscriber
        entry = (call, frozenset(kinds) if kinds is not None else None)
        with self._lock:
            self._set((*self._subscribers, entry))

        def unsubscribe() -> None:
            with self._lock:
                self._set(tuple(s for s in self._subscribers if s is not entry))

        return unsubscribe

    def _set(self, subscribers: tuple[tuple[Callable[[Event], None], frozenset[str] | None], ...]) -> None:
        kinds = [k for _, k in subscribers]
        self._wanted = None if None in kinds else frozenset().union(*kinds)  # type: ignore[arg-type]
        self._subscribers = subscribers

    def emit(self, events: Iterable[Event]) -> None:
        """Give each event to every subscriber that wants it; a failing subscriber is logged and skipped."""
        subscribers = self._subscribers
        if not subscribers:
            return
        for event in events:
            for call, kinds in subscribers:
                if kinds is not None and event.kind not in kinds:
                    continue
                try:
                    call(event)
                except Exception:
                    logger.exception("event subscriber %r failed on %s", call, event.kind)
