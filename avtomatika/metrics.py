"""Orchestration metrics (SPEC §6): a subscriber of the job event stream that counts into storage's counters.

Counters and histogram buckets go to `StorageBackend.add_to_counters`, so every process that commits (API
processes, Celery worker processes, on any host) adds to the same numbers and any API process serves all of
them. Each process sums its amounts in memory and writes them at most every `FLUSH_SECONDS`: one round trip
then, instead of one per event (per-event writes cost ~1 ms of Celery worker CPU per 5-state job). Gauges
(queue depth, live workers) are read from storage when scraped; the history backlog, which each process
buffers on its own, is reported by every process each second (`StorageBackend.report_gauge`) and summed when
scraped. The Prometheus text itself is written by the web adapter (`webapi/metrics.py`); this module has no
Prometheus import.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import math
import os
import socket
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from .storage.base import StorageBackend
from .stream import (
    JOB_CANCELLED,
    JOB_CREATED,
    JOB_FAILED,
    JOB_FINISHED,
    JOB_QUARANTINED,
    STATE_FAILED,
    STATE_FINISHED,
    TASK_DISPATCHED,
    TASK_FINISHED,
    TASK_TIMEOUT,
    WORKER_KINDS,
    Event,
    WorkerEvent,
)

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
GAUGE_SECONDS = 10.0  # a process's gauge report counts this long (it reports every FLUSH_SECONDS while it runs)
# Upper bounds in seconds (+Inf is implied): steps take milliseconds, worker tasks and jobs minutes to hours.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0)
COUNTERS = {
    "orchestrator_jobs_total": "Jobs created, by blueprint",
    "orchestrator_jobs_finished_total": "Jobs that finished, by blueprint",
    "orchestrator_jobs_failed_total": "Jobs that failed (every failure path), by blueprint",
    "orchestrator_jobs_cancelled_total": "Jobs cancelled, by blueprint",
    "orchestrator_jobs_quarantined_total": "Jobs quarantined after repeated handler errors, by blueprint",
    "orchestrator_step_errors_total": "Handler errors of a state (each retry counts), by blueprint and state",
    "orchestrator_tasks_dispatched_total": "Worker tasks queued, by task type",
    "orchestrator_worker_events_total": "Worker registrations, status updates (heartbeats) and expiries, by event",
}
HISTOGRAMS = {
    "orchestrator_job_duration_seconds": "From creation to the end of a job, by blueprint and status",
    "orchestrator_step_duration_seconds": "Run time of a state's handler, by blueprint and state",
    "orchestrator_task_duration_seconds": "From dispatch to the result (or timeout) of a worker task attempt, by task "
    "type and outcome",
}
GAUGES = {
    "orchestrator_task_queue_length": "Tasks waiting for a worker, by task type",
    "orchestrator_active_workers": "Workers with a live registration",
    "orchestrator_history_backlog": "History events buffered but not yet written",
}
_ENDINGS = {
    JOB_FINISHED: "orchestrator_jobs_finished_total",
    JOB_FAILED: "orchestrator_jobs_failed_total",
    JOB_CANCELLED: "orchestrator_jobs_cancelled_total",
    JOB_QUARANTINED: "orchestrator_jobs_quarantined_total",
}
# The event kinds counted (the metrics subscribe to these only, so no other event is built for them).
KINDS = frozenset(
    {JOB_CREATED, *_ENDINGS, STATE_FINISHED, STATE_FAILED, TASK_DISPATCHED, TASK_FINISHED, TASK_TIMEOUT, *WORKER_KINDS}
)
Labels = tuple[tuple[str, str], ...]


def _field(name: str, labels: dict[str, str], part: str = "") -> str:
    """The counter name of one sample (`part`: a bucket's bound, "sum" or "count" of a histogram)."""
    return _field_of(name, tuple(sorted(labels.items())), part)


@functools.lru_cache(maxsize=4096)
def _field_of(name: str, labels: Labels, part: str) -> str:
    return json.dumps([name, labels, part], separators=(",", ":"))


def _bucket(value: float) -> str:
    for bound in BUCKETS:
        if value <= bound:
            return repr(bound)
    return "+Inf"


@dataclass
class Histogram:
    """One labelled histogram: cumulative bucket counts (`(bound, count)`, +Inf last), count and sum."""

    buckets: list[tuple[str, float]]
    count: float = 0.0
    sum: float = 0.0


@dataclass
class Snapshot:
    """Every orchestration metric at one moment, by metric name and label set."""

    counters: dict[str, dict[Labels, float]] = field(default_factory=dict)
    histograms: dict[str, dict[Labels, Histogram]] = field(default_factory=dict)
    gauges: dict[str, dict[Labels, float]] = field(default_factory=dict)


_buffers: weakref.WeakSet[CounterBuffer] = weakref.WeakSet()


def flush_all() -> None:
    """Write every buffer's pending amounts (at exit; Celery's prefork children call it at shutdown)."""
    for buffer in list(_buffers):
        buffer.flush()


atexit.register(flush_all)


class CounterBuffer:
    """Amounts added in this process, written to storage by a daemon thread every `interval` seconds (and at
    `flush()`, at exit). A failed write keeps the amounts for the next one: the fields are bounded by the
    label sets, so the buffer is too. A crash loses at most one interval of this process's counts."""

    def __init__(
        self, storage: StorageBackend, interval: float = FLUSH_SECONDS, beat: Callable[[], None] = lambda: None
    ) -> None:
        self.storage = storage
        self.interval = interval
        self.beat = beat  # called before each periodic flush (reports this process's gauges)
        self._pending: defaultdict[str, float] = defaultdict(float)
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._pid = 0  # the process whose flusher thread runs (a forked child starts its own)
        _buffers.add(self)

    def add(self, amounts: dict[str, float]) -> None:
        """Add to this process's pending amounts (starting its flusher on first use)."""
        with self._lock:
            for name, amount in amounts.items():
                self._pending[name] += amount
            start = self._pid != os.getpid()
            self._pid = os.getpid()
        if start:
            threading.Thread(target=self._run, name="avtomatika-metrics", daemon=True).start()

    def flush(self) -> None:
        """Write the pending amounts now."""
        with self._flushing:
            with self._lock:
                pending, self._pending = self._pending, defaultdict(float)
            if not pending:
                return
            try:
                self.storage.add_to_counters(dict(pending))
            except Exception:  # metrics never fail a job: keep them for the next flush
                logger.warning("could not write %d metric counters; retrying later", len(pending), exc_info=True)
                with self._lock:
                    for name, amount in pending.items():
                        self._pending[name] += amount

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            try:
                self.beat()
            except Exception:  # metrics never fail a job
                logger.warning("could not report this process's gauges", exc_info=True)
            self.flush()


class OrchestrationMetrics:
    """Counts the events of the job event stream into `storage` (subscribe it with `stream.subscribe`);
    `history_backlog` feeds the backlog gauge."""

    def __init__(self, storage: StorageBackend, history_backlog: Callable[[], int | None] = lambda: None) -> None:
        self.storage = storage
        self.history_backlog = history_backlog
        self.buffer = CounterBuffer(storage, beat=self.report_gauges)
        self._member = f"{socket.gethostname()}:{os.getpid()}"

    def report_gauges(self) -> None:
        """Report this process's history backlog (each process buffers its own events; a scrape sums the
        reports of the last `GAUGE_SECONDS`, so a process that died drops out)."""
        if os.getpid() != int(self._member.rpartition(":")[2]):  # a forked child reports as itself
            self._member = f"{socket.gethostname()}:{os.getpid()}"
        backlog = self.history_backlog()
        if backlog is None:  # history is off: nothing to report (no Redis write every second)
            return
        self.storage.report_gauge("history_backlog", self._member, float(backlog), time.time() + GAUGE_SECONDS)

    def handle(self, event: Event) -> None:
        """Count one event of the stream."""
        if isinstance(event, WorkerEvent):
            self._add({_field("orchestrator_worker_events_total", {"event": event.kind}): 1.0})
            return
        amounts: dict[str, float] = {}
        kind, blueprint = event.kind, event.blueprint
        seconds = event.duration_ms / 1000 if event.duration_ms is not None else None
        if kind == JOB_CREATED:
            amounts[_field("orchestrator_jobs_total", {"blueprint": blueprint})] = 1.0
        elif kind in _ENDINGS:
            amounts[_field(_ENDINGS[kind], {"blueprint": blueprint})] = 1.0
            labels = {"blueprint": blueprint, "status": event.status}
            self._observe(amounts, "orchestrator_job_duration_seconds", labels, seconds)
        elif kind == STATE_FINISHED:
            labels = {"blueprint": blueprint, "state": event.state or ""}
            self._observe(amounts, "orchestrator_step_duration_seconds", labels, seconds)
        elif kind == STATE_FAILED:
            amounts[_field("orchestrator_step_errors_total", {"blueprint": blueprint, "state": event.state or ""})] = 1
        elif kind == TASK_DISPATCHED:
            task_type = str(event.details.get("task_type", ""))
            amounts[_field("orchestrator_tasks_dispatched_total", {"task_type": task_type})] = 1.0
        elif kind in (TASK_FINISHED, TASK_TIMEOUT):
            labels = {"task_type": str(event.details.get("task_type", "")), "outcome": event.outcome or ""}
            self._observe(amounts, "orchestrator_task_duration_seconds", labels, seconds)
        if amounts:
            self._add(amounts)

    def _observe(self, amounts: dict[str, float], name: str, labels: dict[str, str], value: float | None) -> None:
        if value is None or not math.isfinite(value):
            return
        amounts[_field(name, labels, _bucket(value))] = 1.0
        amounts[_field(name, labels, "sum")] = value
        amounts[_field(name, labels, "count")] = 1.0

    def _add(self, amounts: dict[str, float]) -> None:
        self.buffer.add(amounts)

    # -- reading ------------------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """Counters and histograms from storage (this process's pending amounts written first), gauges read now."""
        self.buffer.flush()
        snapshot = Snapshot()
        raw: dict[str, dict[Labels, dict[str, float]]] = {}
        for key, amount in self.storage.counters().items():
            try:
                name, pairs, part = json.loads(key)
            except ValueError:
                continue
            labels: Labels = tuple((str(k), str(v)) for k, v in pairs)
            if name in COUNTERS:
                snapshot.counters.setdefault(name, {})[labels] = amount
            elif name in HISTOGRAMS:
                raw.setdefault(name, {}).setdefault(labels, {})[part] = amount
        for name, series in raw.items():
            for labels, parts in series.items():
                cumulative, buckets = 0.0, []
                for bound in [*(repr(b) for b in BUCKETS), "+Inf"]:
                    cumulative += parts.get(bound, 0.0)
                    buckets.append((bound, cumulative))
                histogram = Histogram(buckets, parts.get("count", 0.0), parts.get("sum", 0.0))
                snapshot.histograms.setdefault(name, {})[labels] = histogram
        queues = {task_type: self.storage.queue_length(task_type) for task_type in self.storage.queue_types()}
        snapshot.gauges["orchestrator_task_queue_length"] = {(("task_type", t),): float(n) for t, n in queues.items()}
        snapshot.gauges["orchestrator_active_workers"] = {(): float(len(self.storage.list_workers()))}
        self.report_gauges()
        total = self.storage.gauge_total("history_backlog", time.time())
        snapshot.gauges["orchestrator_history_backlog"] = {(): total}
        return snapshot
