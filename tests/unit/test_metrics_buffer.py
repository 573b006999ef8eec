"""The metrics buffer: amounts reach storage at flush, a failed write is kept for the next one, and the
snapshot of the scraping process includes what it has not written yet."""

from __future__ import annotations

import pytest

from avtomatika import metrics
from avtomatika.storage import MemoryStorage
from avtomatika.stream import JobEvent, WorkerEvent


class FlakyStorage(MemoryStorage):
    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    def add_to_counters(self, amounts: dict[str, float]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("redis is away")
        super().add_to_counters(amounts)


def test_a_failed_write_is_kept_for_the_next_flush(caplog: pytest.LogCaptureFixture) -> None:
    storage = FlakyStorage()
    buffer = metrics.CounterBuffer(storage, interval=3600)
    buffer.add({"a": 1.0})
    buffer.flush()
    assert storage.counters() == {} and "could not write 1 metric counters" in caplog.text
    buffer.add({"a": 2.0, "b": 1.0})
    metrics.flush_all()
    assert storage.counters() == {"a": 3.0, "b": 1.0}
    buffer.flush()  # nothing pending: nothing written twice
    assert storage.counters() == {"a": 3.0, "b": 1.0}


def test_a_snapshot_includes_this_process_pending_counts() -> None:
    storage = MemoryStorage()
    recorder = metrics.OrchestrationMetrics(storage, history_backlog=lambda: 7)
    recorder.buffer.interval = 3600
    for event in (
        JobEvent("job_created", "j1", "bp", "start", "pending", 0),
        JobEvent("state_finished", "j1", "bp", "start", "running", 1, duration_ms=20),
        JobEvent("state_finished", "j1", "bp", "start", "running", 2, duration_ms=7_200_000),
        JobEvent(
            "task_finished",
            "j1",
            "bp",
            "start",
            "running",
            3,
            duration_ms=5,
            outcome="success",
            details={"task_type": "echo"},
        ),
        JobEvent("job_finished", "j1", "bp", "done", "finished", 4, duration_ms=7_300_000),
        WorkerEvent("registered", "w1"),
    ):
        recorder.handle(event)
    snapshot = recorder.snapshot()
    assert snapshot.counters["orchestrator_jobs_total"] == {(("blueprint", "bp"),): 1.0}
    assert snapshot.counters["orchestrator_jobs_finished_total"] == {(("blueprint", "bp"),): 1.0}
    steps = snapshot.histograms["orchestrator_step_duration_seconds"][(("blueprint", "bp"), ("state", "start"))]
    assert steps.count == 2 and steps.sum == pytest.approx(7200.02)
    buckets = dict(steps.buckets)
    assert buckets["0.01"] == 0 and buckets["0.025"] == 1 and buckets["3600.0"] == 1 and buckets["+Inf"] == 2
    tasks = snapshot.histograms["orchestrator_task_duration_seconds"][(("outcome", "success"), ("task_type", "echo"))]
    assert tasks.count == 1
    jobs = snapshot.histograms["orchestrator_job_duration_seconds"][(("blueprint", "bp"), ("status", "finished"))]
    assert jobs.count == 1 and dict(jobs.buckets)["3600.0"] == 0
    assert snapshot.counters["orchestrator_worker_events_total"] == {(("event", "registered"),): 1.0}
    assert snapshot.gauges["orchestrator_history_backlog"] == {(): 7.0}
    assert snapshot.gauges["orchestrator_active_workers"] == {(): 0.0}
