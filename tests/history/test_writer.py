"""The buffered writer (SPEC §6): events from any thread, batches, a refused event dropped without losing the
batch, a bounded buffer."""

from __future__ import annotations

import threading
import uuid

from avtomatika.history import HistoryStore, HistoryWriter
from avtomatika.stream import JobEvent


def event(job_id: str, seq: int, **details) -> JobEvent:
    return JobEvent("state_started", job_id, "bp", "start", "running", seq, details=details)


def test_events_from_many_threads_are_all_written_in_batches(history_url):
    store = HistoryStore(history_url)
    writer = HistoryWriter(store, batch_size=50, flush_seconds=0.05)
    jobs = [str(uuid.uuid4()) for _ in range(8)]
    barrier = threading.Barrier(len(jobs))

    def emit(job_id):
        barrier.wait()
        for seq in range(100):
            writer.handle(event(job_id, seq))

    threads = [threading.Thread(target=emit, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert writer.flush(30) and writer.backlog == 0
    for job_id in jobs:
        assert [r["job_seq"] for r in store.job_events(job_id)] == list(range(100))
    writer.stop()


def test_an_event_the_database_refuses_is_dropped_and_the_rest_of_its_batch_kept(history_url, caplog):
    store = HistoryStore(history_url)
    writer = HistoryWriter(store, batch_size=10, flush_seconds=0.05)
    job_id = str(uuid.uuid4())
    writer.handle(event(job_id, 1))
    writer.handle(event(job_id, 2, bad=object()))  # not JSON: a bug in whoever built it
    writer.handle(event(job_id, 3))
    assert writer.flush(20)
    assert [r["job_seq"] for r in store.job_events(job_id)] == [1, 3]
    assert writer.dropped == 1 and "refused" in caplog.text
    writer.handle(event(job_id, 4))  # the writer keeps going
    assert writer.flush(20) and len(store.job_events(job_id)) == 3
    writer.stop()


def test_a_full_buffer_drops_the_oldest_events_and_counts_them(tmp_path):
    # a database that cannot be opened: nothing drains, the buffer stays bounded
    store = HistoryStore(f"sqlite:///{tmp_path}/no/such/dir/history.db")
    writer = HistoryWriter(store, buffer_size=5, batch_size=2, flush_seconds=0.05)
    for seq in range(20):
        writer.handle(event("j", seq))
    assert writer.backlog <= 5 + 2  # the buffer plus one batch being retried
    assert writer.dropped >= 13
    writer.stop()
