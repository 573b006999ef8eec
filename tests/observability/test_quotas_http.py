"""Monthly quotas through real HTTP (SPEC §5): Redis mode with two gunicorn API processes, 50 concurrent creates
against a quota of 20, the count kept across an API restart, and the warning of the in-memory default."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.services import ROOT, free_port, service_env, start_api

QUOTA = 20
TOKEN = "quota-client-token-0123456789"


@pytest.fixture
def clients_file(tmp_path: Path) -> Path:
    path = tmp_path / "clients.toml"
    path.write_text(
        (ROOT / "tests/apps/clients.toml").read_text() + f'\n[metered]\ntoken = "{TOKEN}"\nmonthly_attempts = {QUOTA}\n'
    )
    return path


@pytest.mark.redis
def test_fifty_concurrent_creates_against_a_quota_of_twenty(redis_url: str, clients_file: Path) -> None:
    env = service_env(
        AVTOMATIKA_APP="tests.apps.suite_app:engine",
        REDIS_URL=redis_url + "/4",
        REDIS_KEY_PREFIX="quota-http",
        CLIENT_TOKEN="q" * 32,
        CLIENTS_CONFIG_PATH=str(clients_file),
        RATE_LIMITING_ENABLED="false",
    )
    port = free_port()
    api, base = start_api(env, workers=2, port=port)
    headers = {"X-Avtomatika-Token": TOKEN}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:

            def create(index: int) -> httpx.Response:
                return http.post("/api/v1/jobs/linear", json={"n": index}, headers={"Idempotency-Key": f"k{index}"})

            with ThreadPoolExecutor(50) as pool:
                answers = list(pool.map(create, range(50)))
            codes = [answer.status_code for answer in answers]
            assert codes.count(202) == QUOTA, codes
            assert codes.count(429) == 50 - QUOTA, codes
            refused = next(answer for answer in answers if answer.status_code == 429)
            assert refused.json()["error"] == "monthly job quota exhausted"
            assert refused.json()["details"] == {"limit": QUOTA}
            assert 1 <= int(refused.headers["Retry-After"]) <= 31 * 86400
            # a repeat of an accepted idempotency key still answers with its job, at no cost
            accepted = codes.index(202)
            again = create(accepted)
            assert again.status_code == 202 and again.json()["job_id"] == answers[accepted].json()["job_id"]
            # another client is not limited by this one's quota
            other = http.post("/api/v1/jobs/linear", json={"n": 1}, headers={"X-Avtomatika-Token": "client-a-token"})
            assert other.status_code == 202
    finally:
        api.stop()
    # the count lives in Redis: a restarted API still refuses
    api, base = start_api(env, workers=2, port=port)
    try:
        answer = httpx.post(base + "/api/v1/jobs/linear", json={"n": 99}, headers=headers, timeout=10)
        assert answer.status_code == 429, answer.text
        assert "Retry-After" in answer.headers
    finally:
        api.stop()


def test_quotas_in_the_in_memory_default_warn_at_start(clients_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    from avtomatika.config import Config
    from tests.apps import suite_app

    config = Config({"CLIENTS_CONFIG_PATH": str(clients_file)})
    engine = suite_app.build_engine(config=config)
    with caplog.at_level(logging.WARNING, logger="avtomatika.quotas"):
        engine.wsgi_app()
    warnings = [record.getMessage() for record in caplog.records if record.name == "avtomatika.quotas"]
    assert len(warnings) == 1 and "metered" in warnings[0] and "REDIS_URL" in warnings[0]
