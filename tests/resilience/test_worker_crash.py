"""Crashes and duplicates with real processes: kill -9 a Celery worker mid-step; duplicate step messages."""

from __future__ import annotations

import itertools
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from celery import Celery

from tests.apps import suite_app
from tests.conftest import Orchestrator
from tests.services import service_env, start_api, start_celery_worker, wait_until

pytestmark = pytest.mark.slow
_databases = itertools.count()


@pytest.fixture
def isolated(redis_url, tmp_path):
    """A Redis DB of its own, an API process and a way to start Celery workers on it; every process logs
    each committed state to `commits.log` (tests.apps.suite_app.CommitProbe)."""
    db = 3 + next(_databases)
    url = f"{redis_url}/{db}"
    import redis

    redis.Redis.from_url(url).flushdb()
    env = service_env(
        AVTOMATIKA_APP="tests.apps.suite_app:engine",
        REDIS_URL=url,
        CELERY_VISIBILITY_TIMEOUT="4",
        CLIENT_TOKEN="z" * 32,
        AVTOMATIKA_TEST_COMMIT_LOG=str(tmp_path / "commits.log"),
    )
    api, base = start_api(env)
    apis = [api]
    workers = []

    def worker(hang_after: str = "", **kwargs):
        proc = start_celery_worker({**env, "AVTOMATIKA_TEST_HANG_AFTER": hang_after}, **kwargs)
        workers.append(proc)
        return proc

    def restart_api():
        apis[-1].kill()
        api, base = start_api(env)
        apis.append(api)
        return Orchestrator("redis", base)

    worker.restart_api = restart_api  # type: ignore[attr-defined]
    worker.api = lambda: apis[-1]  # type: ignore[attr-defined]
    try:
        yield Orchestrator("redis", base), worker, url
    finally:
        for proc in workers:
            proc.stop()
        for proc in apis:
            proc.stop()


def _runs(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def _commits(log: Path, job_id: str) -> list[str]:
    """What the commit probe saw for `job_id`, in order: "state <name>", "hung <name>", "ended <status>"."""
    lines = log.read_text().splitlines() if log.exists() else []
    return [" ".join(line.split()[1:3]) for line in lines if line.startswith(job_id + " ")]


def _applied(log: Path, job_id: str) -> list[str]:
    return [entry for entry in _commits(log, job_id) if not entry.startswith("hung ")]


def test_worker_killed_mid_step_job_finishes_once(isolated, tmp_path):
    orchestrator, worker, _ = isolated
    first = worker(name="doomed", concurrency=1)
    log = tmp_path / "runs.log"
    job_id = orchestrator.create("/api/v1/jobs/slow", {"sleep": 1.5, "log": str(log)})  # inside the 4 s visibility
    wait_until(lambda: len(_runs(log)) == 1, 20, what="the handler to start")
    first.kill()  # SIGKILL to the whole worker: main process and pool child
    assert first.popen.returncode == -signal.SIGKILL
    worker(name="replacement", concurrency=1)
    view = orchestrator.wait(job_id, timeout=60)
    assert view["status"] == "finished", view
    # The handler ran again after the crash (at-least-once execution) ...
    runs = _runs(log)
    assert len(runs) == 2 and runs[0] != runs[1]
    # ... but every state was applied exactly once.
    assert view["state_history"]["visits"] == ["start", "work", "finish"]
    assert _applied(tmp_path / "commits.log", job_id) == ["state start", "state work", "state finish", "ended finished"]


def test_worker_killed_after_commit_before_ack_applies_nothing_twice(isolated, tmp_path):
    """kill -9 between a step's commit and its Celery ack: the broker redelivers the message, which must
    change nothing (its seq is stale), and the job goes on from the committed state."""
    orchestrator, worker, _ = isolated
    commits = tmp_path / "commits.log"
    doomed = worker(name="hangs", concurrency=1, hang_after="work")
    log = tmp_path / "runs.log"
    job_id = orchestrator.create("/api/v1/jobs/slow", {"sleep": 0.2, "log": str(log)})  # 0.2 s ends the burst
    wait_until(lambda: "hung work" in _commits(commits, job_id), 30, what="the commit of `work`")
    doomed.kill()
    replacement = worker(name="replacement", concurrency=1)
    view = orchestrator.wait(job_id, timeout=60)  # visibility timeout 4 s: the redelivery comes well before
    assert view["status"] == "finished", view
    assert view["state_history"]["visits"] == ["start", "work", "finish"]
    # The redelivered message found its seq stale: the handler did not run again, no state applied twice.
    wait_until(lambda: "'stale'" in replacement.output(), 30, what="the redelivery")
    assert len(_runs(log)) == 1
    assert _applied(commits, job_id) == ["state start", "state work", "state finish", "ended finished"]


def test_duplicate_step_message_is_dropped(isolated, tmp_path):
    """Two deliveries of the same step at the same time: both handlers run, one commit wins."""
    orchestrator, worker, url = isolated
    worker(name="pair", concurrency=2)
    log = tmp_path / "runs.log"
    job_id = orchestrator.create("/api/v1/jobs/slow", {"sleep": 1, "log": str(log)})
    sender = Celery("sender", broker=url)
    sender.send_task("avtomatika.step", args=(job_id, 0), queue="avtomatika.steps")
    view = orchestrator.wait(job_id, timeout=30)
    assert view["status"] == "finished"
    assert view["state_history"]["visits"] == ["start", "work", "finish"]
    wait_until(lambda: len(_runs(log)) == 2, 10, what="both deliveries to run the handler")
    # A late duplicate of an already applied step changes nothing.
    before = orchestrator.wait(job_id)
    sender.send_task("avtomatika.step", args=(job_id, 0), queue="avtomatika.steps")
    sender.send_task("avtomatika.step", args=(job_id, 1), queue="avtomatika.steps")
    time.sleep(1.0)  # give the worker time to (not) act on them
    assert orchestrator.wait(job_id) == before
    assert len(_runs(log)) == 2
    # Both handlers ran, but the compare-and-set on seq let only one commit through.
    assert _applied(tmp_path / "commits.log", job_id) == [
        "state start",
        "state work",
        "state finish",
        "ended finished",
    ]
    sender.close()


def test_stalled_job_is_recovered_by_the_sweep(isolated):
    """A job stored without its step message (API crash between the two) is resumed by the sweep."""
    orchestrator, worker, url = isolated
    from avtomatika.config import Config
    from avtomatika.context import ClientConfig
    from avtomatika.core import InlineScheduler

    config = Config({"REDIS_URL": url, "STEP_STALL_SECONDS": "1"})
    engine = suite_app.build_engine(config=config)
    lost = InlineScheduler()  # its messages are never sent: the "crash"
    job_id, _ = engine.build_core(lost).create_job("linear", {"value": 2}, ClientConfig("client_a"))
    worker(name="sweeper", concurrency=1)
    time.sleep(1.1)
    assert engine.service.sweep() == 1
    view = orchestrator.wait(job_id, timeout=20)
    assert view["status"] == "finished"
    engine.storage.close()


def test_a_native_task_longer_than_the_visibility_timeout_runs_once(isolated, tmp_path):
    """The broker redelivers a long task's message after its visibility timeout (4 s here): the redelivery
    must not start the task again while it runs (issue 9, #2)."""
    orchestrator, worker, _ = isolated
    worker(name="natives", concurrency=2)
    log = tmp_path / "native-runs.log"
    job_id = orchestrator.create("/api/v1/jobs/sleepy_native", {"log": str(log), "seconds": 7})
    done = orchestrator.wait(job_id, timeout=60)
    assert done["status"] == "finished" and done["state_history"]["slept"] == 7
    time.sleep(5)  # a redelivery after the end would show up by now
    assert len(log.read_text().splitlines()) == 1


def test_api_killed_mid_request_loses_and_doubles_no_job(isolated, tmp_path):
    """kill -9 the API (gunicorn master and worker) while creation requests are in flight; after a restart,
    clients retry what got no answer with the same Idempotency-Key: every key has exactly one job, and every
    job ends exactly once."""
    orchestrator, worker, url = isolated
    worker(name="steps", concurrency=2)
    answered: dict[str, str] = {}
    unanswered: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def client(n: int) -> None:
        with orchestrator.client() as http:
            for i in itertools.count():
                if stop.is_set():
                    return
                key = f"crash-{n}-{i}"
                try:
                    answer = http.post("/api/v1/jobs/linear", json={"value": i}, headers={"Idempotency-Key": key})
                except httpx.HTTPError:
                    with lock:
                        unanswered.append(key)
                    return
                assert answer.status_code == 202, answer.text
                with lock:
                    answered[key] = answer.json()["job_id"]

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(answered) >= 40, 30, what="jobs to be created")
    restarted = worker.restart_api()  # kill -9 mid-stream, then a fresh API on the same Redis
    stop.set()
    for thread in threads:
        thread.join(30)
    assert unanswered, "the kill hit no request in flight"
    with restarted.client() as http:
        for key in unanswered:  # the clients retry what got no answer
            answer = http.post("/api/v1/jobs/linear", json={"value": 0}, headers={"Idempotency-Key": key})
            assert answer.status_code == 202, answer.text
            answered[key] = answer.json()["job_id"]
        again = http.post("/api/v1/jobs/linear", json={}, headers={"Idempotency-Key": "crash-0-0"})
        assert again.json()["job_id"] == answered["crash-0-0"]
    assert len(set(answered.values())) == len(answered)  # one job per key
    for job_id in answered.values():
        assert restarted.wait(job_id, timeout=60)["status"] == "finished"
    from avtomatika.config import Config

    storage = suite_app.build_engine(config=Config({"REDIS_URL": url})).storage
    total = sum(storage.count_jobs().values())
    storage.close()
    assert total == len(answered)  # no job created without an answer that a retry did not find
    commits = tmp_path / "commits.log"
    for job_id in answered.values():
        assert [e for e in _applied(commits, job_id) if e.startswith("ended")] == ["ended finished"]
