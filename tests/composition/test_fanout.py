"""Fan-out / fan-in over real HTTP in both modes (`blueprints/fanout.py`): Celery chords in Redis mode."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx

from tests.services import wait_until
from tests.workers.support import unique, worker


def serve(orchestrator, task_type: str, count: int, answer, workers: int = 4) -> list[threading.Thread]:
    """`workers` HTTP workers serving `count` branch tasks; `answer(task)` gives each result."""
    served: list[int] = []
    lock = threading.Lock()

    def run(w) -> None:
        while True:
            with lock:
                if len(served) >= count:
                    return
            try:
                task = w.poll()
            except httpx.HTTPError:
                return  # the test ended and closed its workers
            if task is None:
                continue
            with lock:
                served.append(1)
            assert w.result(task, **answer(task)).json()["status"] == "parallel_branch_result_accepted"

    threads = [
        threading.Thread(target=run, args=(worker(orchestrator, task_type),), daemon=True) for _ in range(workers)
    ]
    for thread in threads:
        thread.start()
    return threads


def thumbnail(task) -> dict:
    return {"status": "success", "data": {"path": f"/thumbs/{task['params']['frame']}.jpg"}}


def test_a_fan_out_of_200_branches_aggregates_once(orchestrator, tmp_path):
    task_type, log = unique("thumb"), tmp_path / "aggregations.log"
    threads = serve(orchestrator, task_type, 200, thumbnail)
    job_id = orchestrator.create("/api/v1/jobs/thumbnails", {"task_type": task_type, "frames": 200, "log": str(log)})
    done = orchestrator.wait(job_id, timeout=60)
    for thread in threads:
        thread.join(10)
    assert done["status"] == "finished", done
    assert len(done["state_history"]["thumbnails"]) == 200 and done["state_history"]["failed_branches"] == 0
    wait_until(lambda: log.exists(), 5)
    assert len(Path(log).read_text().splitlines()) == 1


def test_a_permanent_error_branch_still_lets_the_aggregator_decide(orchestrator):
    task_type = unique("thumb")

    def answer(task):
        if task["params"]["frame"] == 1:
            return {"status": "failure", "error": {"code": "PERMANENT_ERROR", "message": "corrupt frame"}}
        return thumbnail(task)

    threads = serve(orchestrator, task_type, 3, answer, workers=2)
    job_id = orchestrator.create("/api/v1/jobs/thumbnails", {"task_type": task_type, "frames": 3})
    done = orchestrator.wait(job_id, timeout=30)
    for thread in threads:
        thread.join(10)
    assert done["status"] == "finished" and done["state_history"]["failed_branches"] == 1
    assert done["state_history"]["thumbnails"] == ["/thumbs/0.jpg", "/thumbs/2.jpg"]


def test_a_transient_error_is_retried_and_progress_shows(orchestrator):
    task_type = unique("thumb")
    job_id = orchestrator.create("/api/v1/jobs/thumbnails", {"task_type": task_type, "frames": 2})
    w = worker(orchestrator, task_type)
    first = w.poll_until()
    with orchestrator.client() as http:
        view = wait_until(lambda: (v := http.get(f"/api/v1/jobs/{job_id}").json()).get("branches") and v, 10)
    assert view["status"] == "waiting_for_parallel_tasks" and view["branches"] == {"total": 2, "done": 0}
    flaky = {"status": "failure", "error": {"code": "TRANSIENT_ERROR", "message": "GPU busy"}}
    assert w.result(first, **flaky).json()["status"] == "parallel_branch_result_accepted"
    retried = [w.poll_until(), w.poll_until()]
    attempts = sorted(t["attempt"] for t in retried)
    assert attempts == [1, 2]  # the other branch's first attempt and the retried one
    for task in retried:
        w.result(task, **thumbnail(task))
    done = orchestrator.wait(job_id)
    assert done["status"] == "finished" and len(done["state_history"]["thumbnails"]) == 2
    # the failed attempt sent again: a repeat of an accepted result, acknowledged, changing nothing
    repeat = w.result(first, **thumbnail(first))
    assert repeat.status_code == 200 and repeat.json() == {"status": "parallel_branch_result_accepted"}
    assert orchestrator.wait(job_id)["state_history"] == done["state_history"]


def test_cancel_withdraws_the_branches(orchestrator):
    task_type = unique("thumb")
    job_id = orchestrator.create("/api/v1/jobs/thumbnails", {"task_type": task_type, "frames": 3})
    w = worker(orchestrator, task_type)
    held = w.poll_until()
    with orchestrator.client() as http:
        assert http.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 200
    assert orchestrator.wait(job_id)["status"] == "cancelled"
    assert w.result(held, **thumbnail(held)).status_code == 200  # acknowledged, changes nothing
    assert w.poll() is None  # the queued branches were withdrawn
    assert w.heartbeat().json().get("cancel_tasks") == [held["task_id"]]


def test_native_branches_run_on_celery(orchestrator):
    job_id = orchestrator.create("/api/v1/jobs/native_fan", {"values": [1, 2, 3, -1]})
    done = orchestrator.wait(job_id, timeout=30)
    assert done["status"] == "finished", done
    assert done["state_history"]["doubled"] == [2, 4, 6]
    assert done["state_history"]["errors"] == ["INVALID_INPUT_ERROR"]


def test_a_native_branch_that_crashes_is_retried(orchestrator, tmp_path):
    """An unexpected exception in a native branch is a transient error: the branch runs again (attempt 2, a
    new task id) and the aggregator gets its second outcome. Redis mode: the retry's Celery message is pushed
    by the script that records attempt 1; embedded: the step pool runs it after that commit."""
    log = tmp_path / "attempts.log"
    edgy = [{"mode": "crash_once", "log": str(log)}, {"mode": "ids"}]
    job_id = orchestrator.create("/api/v1/jobs/native_fan", {"values": [5], "edgy": edgy})
    done = orchestrator.wait(job_id, timeout=30)
    assert done["status"] == "finished", done
    assert done["state_history"]["doubled"] == [10] and done["state_history"]["errors"] == []
    assert done["state_history"]["edgy"] == [1, 2]  # `ids` on its first attempt, `crash_once` on its second
    task_ids, attempts = zip(*(line.split() for line in log.read_text().splitlines()), strict=True)
    assert attempts == ("1", "2") and task_ids[0] != task_ids[1]


def test_the_sweep_runs_a_fan_in_that_never_fired(orchestrator, engine):
    """All branch outcomes recorded but no fan-in (a crash right after the last one): the sweep runs it once."""
    import time

    task_type = unique("thumb")
    job_id = orchestrator.create("/api/v1/jobs/thumbnails", {"task_type": task_type, "frames": 2})
    w = worker(orchestrator, task_type)
    tasks = [w.poll_until(), w.poll_until()]
    storage = engine.storage
    for task in tasks:  # record the outcomes behind the engine's back: no chord completion, no fan-in
        branch = task["task_id"].rpartition("~")[0]
        verdict, _, _ = storage.record_branch(job_id, branch, task["task_id"], w.worker_id, "x", thumbnail(task))
        assert verdict == "ok"
    with orchestrator.client() as http:
        assert http.get(f"/api/v1/jobs/{job_id}").json()["status"] == "waiting_for_parallel_tasks"
    engine.events.sweep_due_jobs(now=time.time() + engine.config.STEP_STALL_SECONDS + 1)
    done = orchestrator.wait(job_id)
    assert done["status"] == "finished" and len(done["state_history"]["thumbnails"]) == 2
