"""A poison step — one that kills its worker process every time — is not redelivered for ever: after
STEP_MAX_DELIVERIES deliveries the job is quarantined with a clear error (issue 9, #12)."""

from __future__ import annotations

import pytest
import redis

from tests.conftest import Orchestrator
from tests.services import service_env, start_api, start_celery_worker

pytestmark = pytest.mark.slow


def test_a_step_that_kills_its_worker_quarantines_the_job_after_n_deliveries(redis_url, tmp_path):
    url = redis_url + "/11"
    redis.Redis.from_url(url).flushdb()
    env = service_env(
        AVTOMATIKA_APP="tests.apps.suite_app:engine",
        REDIS_URL=url,
        CLIENT_TOKEN="p" * 32,
        STEP_MAX_DELIVERIES="3",
        AVTOMATIKA_TEST_ALLOW_EXIT="1",
    )
    api, base = start_api(env)
    worker = start_celery_worker(env, name="poisoned", concurrency=1)
    try:
        orchestrator = Orchestrator("redis", base)
        log = tmp_path / "runs.log"
        job_id = orchestrator.create("/api/v1/jobs/poison", {"log": str(log)})
        view = orchestrator.wait(job_id, timeout=90)  # each death comes back in ~1-2 s (a prefork child)
        assert view["status"] == "quarantined", view
        assert view["error_message"] == (
            "state 'start': its step was delivered 4 times without finishing (the worker process died or storage "
            "failed each time); quarantined after STEP_MAX_DELIVERIES=3"
        )
        assert len(log.read_text().split()) == 3  # ran on three deliveries; the fourth quarantined the job
        assert worker.popen.poll() is None  # the worker itself survives (only its pool children died)
    finally:
        worker.stop()
        api.stop()
