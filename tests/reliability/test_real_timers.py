"""Timers in real time, Redis mode, with Celery beat driving the sweep (no fake clock): lease expiry, a lease
kept alive by heartbeats, worker-record expiry, `dispatch_timeout` and `result_timeout`.

Settings: WORKER_HEALTH_CHECK_INTERVAL_SECONDS=1 (so the worker TTL and a lease's expiry are 2 s) and
WATCHER_INTERVAL_SECONDS=1, TASK_RETRY_BASE_SECONDS=1; every wait below is bounded by those plus a margin
for a loaded machine.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.conftest import Orchestrator
from tests.services import BIN, Process, free_port, service_env, start_api, start_celery_worker, wait_until
from tests.workers.http_worker import HttpWorker, unique

pytestmark = pytest.mark.slow

TTL = 2.0  # 2 × WORKER_HEALTH_CHECK_INTERVAL_SECONDS
SWEEP = 1.0  # WATCHER_INTERVAL_SECONDS
MARGIN = 15.0  # a loaded 2-core machine: beat, a step and a sweep may each be late


@pytest.fixture(scope="module")
def timed(redis_url, tmp_path_factory) -> Iterator[Orchestrator]:
    import redis

    url = f"{redis_url}/13"
    redis.Redis.from_url(url).flushdb()
    env = service_env(
        AVTOMATIKA_APP="tests.apps.suite_app:engine",
        REDIS_URL=url,
        CLIENT_TOKEN="t" * 32,
        WORKER_HEALTH_CHECK_INTERVAL_SECONDS="1",
        WATCHER_INTERVAL_SECONDS="1",
        TASK_RETRY_BASE_SECONDS="1",  # the suite's apps use 0.05 unless this is set
    )
    api, base = start_api(env)
    celery = start_celery_worker(env, name="timers", concurrency=1)
    schedule = tmp_path_factory.mktemp("beat") / f"beat-{free_port()}"
    beat = Process([str(BIN / "celery"), "-A", "celery_app", "beat", "-s", str(schedule)], env, "beat")
    try:
        yield Orchestrator("redis", base)
    finally:
        beat.stop()
        celery.stop()
        api.stop()


def _view(orchestrator: Orchestrator, job_id: str) -> dict:
    with orchestrator.client() as http:
        return dict(http.get(f"/api/v1/jobs/{job_id}").json())


def _task_job(orchestrator: Orchestrator, task_type: str, **envelope) -> str:
    body = {"initial_data": {"task_type": task_type, "timeout": envelope.pop("task_timeout", 60)}, **envelope}
    return orchestrator.create("/api/v1/jobs/tasks", body)


def _live_workers(orchestrator: Orchestrator) -> set[str]:
    with orchestrator.client() as http:
        return {w["worker_id"] for w in http.get("/api/v1/workers").json()}


def test_a_silent_workers_lease_expires_and_the_task_is_retried(timed):
    task_type = unique("lease")
    worker = HttpWorker(timed.base, supported_tasks=[task_type])
    assert worker.register().status_code == 200
    job_id = _task_job(timed, task_type)
    handed_out = time.monotonic()  # before the request: the lease starts a little later
    task = worker.poll_until()
    view = wait_until(
        lambda: (v := _view(timed, job_id))["retry_count"] == 1 and v,
        TTL + SWEEP + MARGIN,
        what="the sweep to apply the expired lease",
    )
    assert time.monotonic() - handed_out >= TTL * 0.9  # not before the lease's expiry
    assert "lease expired: worker " + worker.worker_id in view["error_message"]
    # The worker's late result is stale; the retried attempt (a new task id) is what counts now.
    assert worker.result(task, status="success").status_code == 409
    assert worker.register().status_code == 200  # its record expired with the silence too
    retried = worker.poll_until()
    assert retried["task_id"] != task["task_id"]
    assert worker.result(retried, status="success").status_code == 200
    assert timed.wait(job_id)["status"] == "finished"
    worker.close()


def test_heartbeats_keep_a_lease_beyond_its_ttl(timed):
    task_type = unique("beating")
    worker = HttpWorker(timed.base, supported_tasks=[task_type])
    assert worker.register().status_code == 200
    job_id = _task_job(timed, task_type)
    task = worker.poll_until()
    until = time.monotonic() + 3 * TTL  # three lease lifetimes and several sweeps
    while time.monotonic() < until:
        assert worker.heartbeat().status_code == 200
        time.sleep(TTL / 4)
    view = _view(timed, job_id)
    assert view["status"] == "waiting_for_worker" and view["retry_count"] == 0, view
    assert worker.result(task, status="success").status_code == 200
    assert timed.wait(job_id)["status"] == "finished"
    worker.close()


def test_a_lease_ends_at_its_hard_deadline_despite_heartbeats(timed):
    task_type = unique("deadline")
    worker = HttpWorker(timed.base, supported_tasks=[task_type])
    assert worker.register().status_code == 200
    job_id = _task_job(timed, task_type, task_timeout=3)
    task = worker.poll_until()
    deadline = time.monotonic() + 3 + SWEEP + MARGIN
    while _view(timed, job_id)["retry_count"] == 0:
        assert time.monotonic() < deadline, "the lease outlived its hard deadline"
        assert worker.heartbeat().status_code == 200
        time.sleep(TTL / 4)
    assert worker.result(task, status="success").status_code == 409
    worker.close()


def test_a_worker_record_expires_without_heartbeats(timed):
    worker = HttpWorker(timed.base, supported_tasks=[unique("idle")])
    registered = time.monotonic()  # before the request: the server's clock starts a little later
    assert worker.register().status_code == 200
    assert worker.worker_id in _live_workers(timed)
    wait_until(lambda: worker.worker_id not in _live_workers(timed), TTL + MARGIN, what="the record to expire")
    assert time.monotonic() - registered >= TTL * 0.9
    answer = worker.heartbeat()
    assert answer.status_code == 404 and answer.json()["error"] == "unknown worker: register first"
    worker.close()


def test_task_retries_back_off_exponentially(timed):
    """After attempt n fails with TRANSIENT_ERROR the next attempt is queued after 0.5–1 × base × 2^(n-1)."""
    task_type = unique("backoff")
    worker = HttpWorker(timed.base, supported_tasks=[task_type])
    assert worker.register().status_code == 200
    job_id = _task_job(timed, task_type)
    task = worker.poll_until()
    for attempt, at_least in ((1, 0.5), (2, 1.0)):
        error = {"code": "TRANSIENT_ERROR", "message": f"try {attempt}"}
        failed_at = time.monotonic()
        assert worker.result(task, status="failure", error=error).status_code == 200
        task = worker.poll_until(attempts=10)
        assert task["attempt"] == attempt + 1
        assert time.monotonic() - failed_at >= at_least * 0.95
    assert worker.result(task, status="success").status_code == 200
    view = timed.wait(job_id)
    assert view["status"] == "finished" and view["retry_count"] == 0
    worker.close()


@pytest.mark.parametrize(
    ("envelope", "error"),
    [
        ({"dispatch_timeout": 1}, "within dispatch_timeout"),
        ({"result_timeout": 1}, "result_timeout of 1 s exceeded"),
    ],
)
def test_timeouts_fail_a_job_nobody_serves(timed, envelope, error):
    created = time.monotonic()
    job_id = _task_job(timed, unique("nobody"), **envelope)
    view = timed.wait(job_id, timeout=1 + SWEEP + MARGIN)
    assert view["status"] == "failed" and error in view["error_message"], view
    assert time.monotonic() - created >= 0.9
