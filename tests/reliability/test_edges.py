"""Holes a review found at the edges (issue 9): the reserved worker id, the default admin client, Redis down."""

from __future__ import annotations

import uuid

import httpx

from avtomatika.config import DEFAULT_CLIENT_TOKEN
from tests.services import GLOBAL_WORKER_TOKEN, ROOT, redis_server, service_env, start_api
from tests.unit.test_client_registry import registry
from tests.workers.support import every_route


def test_the_native_worker_id_is_reserved(orchestrator):
    """Native task types hold their leases as worker `celery`: no HTTP worker may act under that id."""
    statuses = every_route(orchestrator.base, "celery", GLOBAL_WORKER_TOKEN)
    assert statuses == dict.fromkeys(statuses, 403)


def test_no_default_admin_when_a_clients_file_is_given_and_client_token_is_unset(tmp_path):
    found = registry(tmp_path, '[a]\ntoken = "t-a"\n', DEFAULT_CLIENT_TOKEN)
    assert found.authenticate(DEFAULT_CLIENT_TOKEN) is None
    assert [c.client_id for c in found.clients] == ["a"]


def test_redis_down_answers_503_with_retry_after():
    with redis_server() as url:
        env = service_env(AVTOMATIKA_APP="tests.apps.suite_app:engine", REDIS_URL=url, CLIENT_TOKEN="d" * 32)
        env["CLIENTS_CONFIG_PATH"] = str(ROOT / "tests/apps/clients.toml")
        api, base = start_api(env)
    try:  # redis-server is stopped now
        with httpx.Client(base_url=base, headers={"X-Avtomatika-Token": "client-a-token"}, timeout=20) as http:
            for answer in (
                http.get(f"/api/v1/jobs/{uuid.uuid4()}"),
                http.post("/api/v1/jobs/linear", json={"value": 1}),
                http.post(
                    "/_worker/workers/register",
                    json={"worker_id": "w", "supported_tasks": ["x"]},
                    headers={"X-Worker-Token": GLOBAL_WORKER_TOKEN},
                ),
            ):
                assert answer.status_code == 503, answer.text
                assert answer.json() == {"error": "storage unavailable", "details": None}
                assert answer.headers["Retry-After"] == "2"
            assert http.get("/_public/status").status_code == 503
    finally:
        api.stop()


def test_a_paused_redis_does_not_hang_the_health_check():
    import time

    import redis

    with redis_server() as url:
        env = service_env(AVTOMATIKA_APP="tests.apps.suite_app:engine", REDIS_URL=url, CLIENT_TOKEN="p" * 32)
        api, base = start_api(env)
        try:
            redis.Redis.from_url(url).execute_command("CLIENT", "PAUSE", "8000", "ALL")
            started = time.monotonic()
            answer = httpx.get(base + "/_public/status", timeout=20)
            elapsed = time.monotonic() - started
            assert answer.status_code == 503 and answer.json()["checks"]["storage"] == "unreachable"
            assert elapsed < 6  # the health check's own 1.5 s timeout, not the pause
        finally:
            api.stop()
