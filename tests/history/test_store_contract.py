"""The history store's contract, run against SQLite and a real PostgreSQL (SPEC §6, §8)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from datetime import datetime

from sqlalchemy import inspect, text

from avtomatika.history import HistoryStore
from avtomatika.reputation import refresh_reputations, reputation
from avtomatika.storage import MemoryStorage
from avtomatika.stream import JobEvent, WorkerEvent
from tests.services import ROOT


def event(job_id: str, kind: str, seq: int, status: str = "running", at: float | None = None, **fields) -> JobEvent:
    return JobEvent(
        kind=kind,
        job_id=job_id,
        blueprint=fields.pop("blueprint", "bp"),
        state=fields.pop("state", "start"),
        status=status,
        seq=seq,
        timestamp=time.time() if at is None else at,
        **fields,
    )


def ids(events):
    return [(str(uuid.uuid4()), e) for e in events]


def test_schema_is_created_and_versioned_and_migrating_again_changes_nothing(history_url):
    store = HistoryStore(history_url)
    store.migrate()
    store.migrate()
    tables = set(inspect(store.engine).get_table_names())
    assert {"job_history", "worker_history", "history_jobs", "avtomatika_history_version"} <= tables
    with store.engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM avtomatika_history_version")).scalars().all() == [
            "0001"
        ]


def test_several_processes_migrating_at_once_all_succeed(history_url, tmp_path):
    # API and Celery worker processes all create the schema on start; each starts when a file appears
    go = tmp_path / "go"
    script = (
        "import os, sys, time\n"
        "from avtomatika.history import HistoryStore\n"
        "store = HistoryStore(sys.argv[1])\n"
        "while not os.path.exists(sys.argv[2]): time.sleep(0.001)\n"
        "store.migrate()\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, history_url, str(go)], cwd=ROOT, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    time.sleep(1.0)  # all imported and waiting
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    store = HistoryStore(history_url)
    with store.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM avtomatika_history_version")).scalar() == 1


def test_events_come_back_in_commit_order_with_microsecond_timestamps(history_url):
    store = HistoryStore(history_url)
    job = str(uuid.uuid4())
    base = 1_765_000_000.123456
    first = [
        event(job, "job_created", 0, "pending", base, details={"client_id": "c1"}),
        event(job, "state_started", 1, at=base + 0.000001, attempt=1),
        event(job, "state_finished", 1, at=base + 0.000002, previous_state="start", next_state="b", duration_ms=3),
    ]
    second = [event(job, "job_finished", 2, "finished", base + 0.5, state="b", details={"error_message": None})]
    # another process wrote the later commit first: the order is still the job's commit order
    store.write(ids(second))
    store.write(ids(first))
    rows = store.job_events(job)
    assert [r["event_type"] for r in rows] == ["job_created", "state_started", "state_finished", "job_finished"]
    assert [r["sequence"] for r in rows] == [1, 2, 3, 4]
    stamps = [datetime.fromisoformat(r["timestamp"]).timestamp() for r in rows]
    assert stamps == sorted(stamps)
    assert [round(s, 6) for s in stamps[:3]] == [round(base + i * 0.000001, 6) for i in range(3)]
    finished = rows[2]
    assert (finished["previous_state"], finished["next_state"], finished["duration_ms"]) == ("start", "b", 3)
    assert rows[1]["attempt_number"] == 1
    assert rows[0]["context_snapshot"] == {"client_id": "c1"}


def test_a_batch_written_twice_is_stored_once(history_url):
    store = HistoryStore(history_url)
    job = str(uuid.uuid4())
    batch = ids([event(job, "job_created", 0, "pending", details={"client_id": "c"}), event(job, "state_started", 1)])
    store.write(batch)
    store.write(batch)  # the first commit's answer was lost: the writer sends it again
    assert len(store.job_events(job)) == 2


def test_job_list_filters_pages_and_keeps_the_newest_status(history_url):
    store = HistoryStore(history_url)
    t0 = time.time()
    jobs = {}
    for n, (client, bp, end) in enumerate(
        [("c1", "a", "job_finished"), ("c1", "b", "job_failed"), ("c2", "a", "job_finished"), ("c1", "a", None)]
    ):
        job = str(uuid.uuid4())
        jobs[job] = (client, bp, end)
        events = [event(job, "job_created", 0, "pending", t0 + n, blueprint=bp, details={"client_id": client})]
        if end:
            status = {"job_finished": "finished", "job_failed": "failed"}[end]
            events.append(event(job, end, 3, status, t0 + n + 0.5, blueprint=bp, details={"error_message": "x"}))
        store.write(ids(events))
    # a late event of an older commit does not take the newest status back
    done = next(j for j, v in jobs.items() if v == ("c1", "a", "job_finished"))
    store.write(ids([event(done, "task_started", 1, "waiting_for_worker", t0 + 10, blueprint="a")]))

    mine = store.list_jobs(client_id="c1")
    assert len(mine) == 3 and all(jobs[j["id"]][0] == "c1" for j in mine)
    assert [j["updated_at"] for j in mine] == sorted((j["updated_at"] for j in mine), reverse=True)
    assert {j["status"] for j in store.list_jobs(client_id=None, status="finished")} == {"finished"}
    assert len(store.list_jobs(client_id=None, status="finished")) == 2
    assert [j["id"] for j in store.list_jobs(client_id="c1", status="finished")] == [done]
    assert len(store.list_jobs(client_id=None, blueprint="a")) == 3
    page1 = store.list_jobs(client_id=None, limit=2)
    page2 = store.list_jobs(client_id=None, limit=2, offset=2)
    assert len(page1) == len(page2) == 2 and not {j["id"] for j in page1} & {j["id"] for j in page2}
    assert store.job_owner(done) == "c1" and store.job_owner(str(uuid.uuid4())) is None
    assert store.count_by_status() == {"finished": 2, "failed": 1, "pending": 1}
    (finished,) = [j for j in mine if j["id"] == done]
    assert finished["finished_at"] is not None and finished["error_message"] == "x"


def test_the_summary_learns_its_owner_from_a_creation_written_late(history_url):
    store = HistoryStore(history_url)
    job = str(uuid.uuid4())
    store.write(ids([event(job, "state_started", 1)]))
    store.write(ids([event(job, "job_created", 0, "pending", details={"client_id": "late"})]))
    assert store.job_owner(job) == "late"
    assert store.list_jobs(client_id="late")[0]["status"] == "running"


def test_worker_events_are_stored_without_secrets_given(history_url):
    store = HistoryStore(history_url)
    store.write(ids([WorkerEvent("registered", "w1", snapshot={"worker_id": "w1", "supported_tasks": ["a"]})]))
    store.write(ids([WorkerEvent("expired", "w1")]))
    rows = store.worker_events("w1")
    assert [r["event_type"] for r in rows] == ["registered", "expired"]
    assert rows[0]["worker_info_snapshot"]["supported_tasks"] == ["a"]


def test_reputation_is_recomputed_from_attempt_outcomes(history_url):
    store = HistoryStore(history_url)
    job = str(uuid.uuid4())
    outcomes = {"good": ["success"] * 4, "bad": ["success", "failure", "timeout", "failure"]}
    events = []
    for worker, results in outcomes.items():
        for n, outcome in enumerate(results):
            kind = "task_timeout" if outcome == "timeout" else "task_finished"
            events.append(event(job, kind, n + 1, worker_id=worker, outcome=outcome, task_id=f"{worker}{n}"))
    events.append(event(job, "task_finished", 9, worker_id="good", outcome="cancelled"))  # not the worker's fault
    store.write(ids(events))
    counts = store.worker_outcomes(time.time() - 60)
    assert counts["good"] == {"success": 4, "failure": 0, "timeout": 0}
    assert counts["bad"] == {"success": 1, "failure": 2, "timeout": 1}
    assert store.worker_outcomes(time.time() + 60) == {}

    storage = MemoryStorage()
    for worker in ("good", "bad", "new"):
        storage.save_worker({"worker_id": worker, "supported_tasks": ["t"], "reputation": 1.0}, 60, time.time())
    values = refresh_reputations(storage, store, 60, time.time())
    assert values == {"good": 1.0, "bad": reputation({"success": 1, "failure": 2, "timeout": 1}), "new": 1.0}
    assert values["bad"] == 0.4
    assert [w["reputation"] for w in storage.get_workers(["good", "bad", "new"])] == [1.0, 0.4, 1.0]
