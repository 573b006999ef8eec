"""Two SDK worker processes; the one holding a task is killed with kill -9: the lease expires, the other
worker completes the task, and the job finishes exactly once."""

from __future__ import annotations

import pytest

from tests.conftest import Orchestrator
from tests.services import (
    BIN,
    GLOBAL_WORKER_TOKEN,
    Process,
    free_port,
    service_env,
    start_api,
    start_celery_worker,
    wait_until,
)

pytestmark = pytest.mark.slow


def test_killed_sdk_worker_lease_expires_and_other_worker_finishes(redis_url, tmp_path):
    import redis

    url = f"{redis_url}/14"
    redis.Redis.from_url(url).flushdb()
    env = service_env(
        AVTOMATIKA_APP="tests.apps.suite_app:engine",
        REDIS_URL=url,
        CLIENT_TOKEN="k" * 32,
        WORKER_HEALTH_CHECK_INTERVAL_SECONDS="1",
        WATCHER_INTERVAL_SECONDS="1",
    )
    api, base = start_api(env)
    celery = start_celery_worker(env, name="steps", concurrency=1)
    beat = Process(
        [str(BIN / "celery"), "-A", "celery_app", "beat", "-s", str(tmp_path / f"beat-{free_port()}")], env, "beat"
    )
    log = tmp_path / "runs.log"
    workers = []

    def sdk_worker(worker_id: str) -> Process:
        worker_env = {
            **env,
            "TEST_WORKER_ID": worker_id,
            "TEST_TASK_TYPE": "crash-echo",
            "AVTOMATIKA_ORCHESTRATOR_URL": base,
            "AVTOMATIKA_WORKER_TOKEN": GLOBAL_WORKER_TOKEN,
        }
        proc = Process([str(BIN / "avtomatika"), "worker", "tests.apps.sdk_worker:worker"], worker_env, worker_id)
        workers.append(proc)
        return proc

    try:
        orchestrator = Orchestrator("redis", base)
        doomed = sdk_worker("sdk-doomed")
        job_id = orchestrator.create("/api/v1/jobs/crash", {"log": str(log)})
        wait_until(lambda: log.exists() and "sdk-doomed attempt=1" in log.read_text(), 30, what="first attempt")
        doomed.kill()
        sdk_worker("sdk-survivor")
        view = orchestrator.wait(job_id, timeout=60)
        assert view["status"] == "finished", view
        assert view["state_history"]["done_by"] == "sdk-survivor"
        assert view["state_history"]["attempt"] == 2
        assert view["retry_count"] == 0
        runs = log.read_text().split("\n")
        assert [r for r in runs if r] == ["sdk-doomed attempt=1", "sdk-survivor attempt=2"]
    finally:
        for proc in workers:
            proc.stop()
        beat.stop()
        celery.stop()
        api.stop()
