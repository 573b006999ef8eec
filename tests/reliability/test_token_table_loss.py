"""Per-worker tokens never fall back to the global token when Redis loses its data (FLUSHDB, a restart
without persistence): the API process puts its token table back before it answers (issue 9, #3)."""

from __future__ import annotations

import time

import httpx
import redis

from tests.services import GLOBAL_WORKER_TOKEN, service_env, start_api
from webapi.worker_auth import CACHE_SECONDS

GPU_TOKEN = "gpu-worker-01-secret"  # tests/apps/workers.toml
REGISTER = {"worker_id": "gpu-worker-01", "supported_tasks": ["x"]}


def test_a_flushed_redis_does_not_open_the_global_token_to_a_worker_with_its_own(redis_url):
    url = redis_url + "/7"
    env = service_env(AVTOMATIKA_APP="tests.apps.suite_app:engine", REDIS_URL=url, CLIENT_TOKEN="t" * 32)
    api, base = start_api(env)
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            assert (
                http.post("/_worker/workers/register", json=REGISTER, headers={"X-Worker-Token": GPU_TOKEN}).status_code
                == 200
            )
            redis.Redis.from_url(url).flushdb()
            time.sleep(CACHE_SECONDS + 0.2)  # the API caches a worker's token hash this long
            refused = http.post(
                "/_worker/workers/register", json=REGISTER, headers={"X-Worker-Token": GLOBAL_WORKER_TOKEN}
            )
            assert refused.status_code == 401
            own = http.post("/_worker/workers/register", json=REGISTER, headers={"X-Worker-Token": GPU_TOKEN})
            assert own.status_code == 200
        assert "restoring it" in api.output()
    finally:
        api.stop()
