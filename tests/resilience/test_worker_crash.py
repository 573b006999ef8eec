"""Crashes and duplicates with real processes: kill -9 a Celery worker mid-step; duplicate step messages."""

from __future__ import annotations

import itertools
import signal
import time
from pathlib import Path

import pytest
from celery import Celery

from tests.apps import suite_app
from tests.conftest import Orchestrator
from tests.services import service_env, start_api, start_celery_worker, wait_until

pytestmark = pytest.mark.slow
_databases = itertools.count()


@pytest.fixture
def isolated(redis_url, request):
    """A Redis DB of its own, an API process and a way to start Celery workers on it."""
    db = 3 + next(_databases)
    url = f"{redis_url}/{db}"
    import redis

    redis.Redis.from_url(url).flushdb()
    env = service_env(
        AVTOMATIKA_APP="tests.apps.suite_app:engine",
        REDIS_URL=url,
        CELERY_VISIBILITY_TIMEOUT="4",
        CLIENT_TOKEN="z" * 32,
    )
    api, base = start_api(env)
    workers = []

    def worker(**kwargs):
        proc = start_celery_worker(env, **kwargs)
        workers.append(proc)
        return proc

    try:
        yield Orchestrator("redis", base), worker, url
    finally:
        for proc in workers:
            proc.stop()
        api.stop()


def _runs(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def test_worker_killed_mid_step_job_finishes_once(isolated, tmp_path):
    orchestrator, worker, _ = isolated
    first = worker(name="doomed", concurrency=1)
    log = tmp_path / "runs.log"
    job_id = orchestrator.create("/api/v1/jobs/slow", {"sleep": 3, "log": str(log)})
    wait_until(lambda: len(_runs(log)) == 1, 20, what="the handler to start")
    first.kill()  # SIGKILL to the whole worker: main process and pool child
    assert first.popen.returncode == -signal.SIGKILL
    started = time.monotonic()
    worker(name="replacement", concurrency=1)
    view = orchestrator.wait(job_id, timeout=60)
    assert view["status"] == "finished", view
    # The handler ran again after the crash (at-least-once execution) ...
    runs = _runs(log)
    assert len(runs) == 2 and runs[0] != runs[1]
    # ... but every state was applied exactly once.
    assert view["state_history"]["visits"] == ["start", "work", "finish"]
    assert time.monotonic() - started < 45


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
