"""Worker-token reload in Redis mode across processes: `POST /api/v1/admin/reload-workers` on one gunicorn
process takes effect on another one (added, changed and removed tokens)."""

from __future__ import annotations

import shutil

import httpx
import redis

from tests.apps import suite_app
from tests.services import GLOBAL_WORKER_TOKEN, ROOT, service_env, start_api, wait_until
from webapi.worker_auth import CACHE_SECONDS


def _register(base: str, worker_id: str, token: str) -> int:
    body = {"worker_id": worker_id, "supported_tasks": ["x"]}
    with httpx.Client(base_url=base, timeout=10) as http:
        return http.post("/_worker/workers/register", json=body, headers={"X-Worker-Token": token}).status_code


def test_a_reload_on_one_api_process_is_seen_by_another(redis_url, tmp_path):
    url = redis_url + "/8"
    redis.Redis.from_url(url).flushdb()
    workers_file = tmp_path / "workers.toml"
    shutil.copy(ROOT / "tests/apps/workers.toml", workers_file)
    env = service_env(
        AVTOMATIKA_APP="tests.apps.suite_app:engine",
        REDIS_URL=url,
        CLIENT_TOKEN="r" * 32,
        WORKERS_CONFIG_PATH=str(workers_file),
    )
    first, first_base = start_api(env)
    second, other = start_api(env)
    try:
        assert _register(other, "gpu-worker-01", "gpu-worker-01-secret") == 200
        assert _register(other, "cpu-worker-02", "cpu-worker-02-secret") == 200
        assert _register(other, "newcomer", "newcomer-secret") == 401
        workers_file.write_text(
            '[gpu-worker-01]\ntoken = "gpu-worker-01-rotated"\n\n'  # changed
            '[newcomer]\ntoken = "newcomer-secret"\n'  # added; cpu-worker-02 removed
        )
        with httpx.Client(base_url=first_base, headers={"X-Avtomatika-Token": suite_app.ADMIN}) as http:
            answer = http.post("/api/v1/admin/reload-workers")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"status": "worker_configs_reloaded", "workers_with_own_token": 2}
        # The other process caches a worker's token hash for CACHE_SECONDS at most.
        wait_until(
            lambda: _register(other, "newcomer", "newcomer-secret") == 200,
            CACHE_SECONDS + 10,
            what="the added token on the other process",
        )
        wait_until(
            lambda: _register(other, "gpu-worker-01", "gpu-worker-01-secret") == 401,
            CACHE_SECONDS + 10,
            what="the changed token's old value to be refused",
        )
        assert _register(other, "gpu-worker-01", "gpu-worker-01-rotated") == 200
        assert _register(other, "gpu-worker-01", GLOBAL_WORKER_TOKEN) == 401
        wait_until(
            lambda: _register(other, "cpu-worker-02", "cpu-worker-02-secret") == 401,
            CACHE_SECONDS + 10,
            what="the removed token to be refused",
        )
        assert _register(other, "cpu-worker-02", GLOBAL_WORKER_TOKEN) == 200  # back on the global token
        assert _register(other, "newcomer", GLOBAL_WORKER_TOKEN) == 401
    finally:
        second.stop()
        first.stop()
