"""Fan-in under crashes and concurrency, with real processes (Redis mode, Celery chords)."""

from __future__ import annotations

import signal
import threading

import pytest

from tests.composition.test_fanout import thumbnail
from tests.resilience.test_worker_crash import _commits, _runs, isolated  # noqa: F401 - the fixture
from tests.services import service_env, start_api, wait_until
from tests.workers.http_worker import HttpWorker, unique

pytestmark = pytest.mark.slow


def drain(bases: list[str], task_type: str, count: int, workers: int = 4) -> list[HttpWorker]:
    """HTTP workers spread over `bases` (one API process each) that serve `count` branches, all at once."""
    crew = []
    for index in range(workers):
        w = HttpWorker(bases[index % len(bases)], supported_tasks=[task_type])
        assert w.register().status_code == 200
        crew.append(w)
    served: list[int] = []
    lock = threading.Lock()

    def run(w: HttpWorker) -> None:
        while True:
            with lock:
                if len(served) >= count:
                    return
            task = w.poll()
            if task is None:
                continue
            with lock:
                served.append(1)
            assert w.result(task, **thumbnail(task)).status_code == 200

    threads = [threading.Thread(target=run, args=(w,), daemon=True) for w in crew]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return crew


def test_a_celery_worker_killed_during_the_fan_in_neither_loses_nor_duplicates_it(isolated, tmp_path):  # noqa: F811
    orchestrator, worker, _ = isolated
    doomed = worker(name="doomed", concurrency=1)
    task_type, log = unique("thumb"), tmp_path / "aggregations.log"
    job_id = orchestrator.create(
        "/api/v1/jobs/thumbnails", {"task_type": task_type, "frames": 20, "log": str(log), "sleep": 3}
    )
    drain([orchestrator.base], task_type, 20)
    wait_until(lambda: len(_runs(log)) == 1, 30, what="the aggregator to start")
    doomed.popen.send_signal(signal.SIGKILL)  # the Celery worker dies while the aggregator runs
    doomed.popen.wait(10)
    worker(name="rescuer", concurrency=1)
    done = orchestrator.wait(job_id, timeout=60)
    assert done["status"] == "finished" and len(done["state_history"]["thumbnails"]) == 20
    assert done["current_state"] == "finished"
    runs = _runs(log)
    assert len(runs) == 2 and runs[0] != runs[1]  # re-run by the rescuer; its commit is the only one


def test_a_worker_killed_right_after_a_native_branch_retry_commit_loses_nothing(isolated, tmp_path):  # noqa: F811
    """kill -9 the Celery worker right after the commit that retries a native branch (the commit probe hangs
    there, before anything that follows the commit): the retry's Celery message was pushed by that commit,
    so another worker runs attempt 2 at once. Were it sent after the commit, the branch would wait for its
    lease's hard deadline (`WORKER_TIMEOUT_SECONDS`, 300 s) before the sweep retried it."""
    orchestrator, worker, _ = isolated
    commits, log = tmp_path / "commits.log", tmp_path / "attempts.log"
    doomed = worker(name="hangs", concurrency=1, hang_after="task_retry")
    edgy = [{"mode": "crash_once", "log": str(log)}]
    job_id = orchestrator.create("/api/v1/jobs/native_fan", {"values": [3], "edgy": edgy})
    wait_until(lambda: "hung task_retry" in _commits(commits, job_id), 30, what="the commit retrying the branch")
    doomed.kill()
    worker(name="rescuer", concurrency=1)
    done = orchestrator.wait(job_id, timeout=60)
    assert done["status"] == "finished", done
    assert done["state_history"]["edgy"] == [2] and done["state_history"]["doubled"] == [6]
    assert [line.split()[1] for line in log.read_text().splitlines()] == ["1", "2"]  # attempt 1 did not run again


def test_branch_results_through_two_api_processes_lose_nothing(isolated):  # noqa: F811
    orchestrator, worker, url = isolated
    worker(name="fanin", concurrency=2)
    second, second_base = start_api(
        service_env(AVTOMATIKA_APP="tests.apps.suite_app:engine", REDIS_URL=url, CLIENT_TOKEN="z" * 32)
    )
    try:
        task_type = unique("thumb")
        job_id = orchestrator.create("/api/v1/jobs/thumbnails", {"task_type": task_type, "frames": 300})
        drain([orchestrator.base, second_base], task_type, 300, workers=8)
        done = orchestrator.wait(job_id, timeout=60)
        assert done["status"] == "finished"
        assert len(done["state_history"]["thumbnails"]) == 300 and done["state_history"]["failed_branches"] == 0
    finally:
        second.stop()


def test_a_fan_out_of_1000_branches(isolated, tmp_path):  # noqa: F811
    orchestrator, worker, _ = isolated
    worker(name="wide", concurrency=2)
    task_type, log = unique("thumb"), tmp_path / "aggregations.log"
    job_id = orchestrator.create("/api/v1/jobs/thumbnails", {"task_type": task_type, "frames": 1000, "log": str(log)})
    drain([orchestrator.base], task_type, 1000, workers=8)
    done = orchestrator.wait(job_id, timeout=90)
    assert done["status"] == "finished" and len(done["state_history"]["thumbnails"]) == 1000
    assert len(_runs(log)) == 1
