"""Shared fixtures: real Redis, the API in both modes (embedded in-process; Redis with gunicorn + Celery)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest

from tests.apps import suite_app
from tests.services import redis_server, service_env, start_api, start_celery_worker
from tests.suite_record import (  # noqa: F401  (hooks: what the run leaves, for tests/test_secret_scan.py)
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_runtest_logfinish,
    pytest_unconfigure,
)

TERMINAL = {"finished", "failed", "cancelled", "quarantined"}


@dataclass
class Orchestrator:
    """A running orchestrator reachable over HTTP."""

    mode: str
    base: str
    step_log: Callable[[], str] | None = None  # Redis mode: the Celery worker's output (embedded: use caplog)

    def client(self, token: str | None = suite_app.CLIENT_A) -> httpx.Client:
        headers = {"X-Avtomatika-Token": token} if token else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=10)

    def create(self, path: str, body, token: str = suite_app.CLIENT_A) -> str:
        with self.client(token) as http:
            answer = http.post(path, json=body)
        assert answer.status_code == 202, answer.text
        return str(answer.json()["job_id"])

    def wait(self, job_id: str, token: str = suite_app.CLIENT_A, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        with self.client(token) as http:
            while time.monotonic() < deadline:
                view = http.get(f"/api/v1/jobs/{job_id}").json()
                if view.get("status") in TERMINAL:
                    return view
                time.sleep(0.02)
        raise AssertionError(f"job {job_id} not terminal after {timeout}s: {view}")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@contextmanager
def embedded_orchestrator(poll_timeout: int = 2) -> Iterator[Orchestrator]:
    """The suite app embedded in this process (MemoryStorage, cheroot, the step pool) on a free port."""
    from avtomatika.config import Config
    from tests.services import GLOBAL_WORKER_TOKEN, ROOT

    config = Config(
        {
            "CLIENTS_CONFIG_PATH": str(ROOT / "tests/apps/clients.toml"),
            "WORKERS_CONFIG_PATH": str(ROOT / "tests/apps/workers.toml"),
            "GLOBAL_WORKER_TOKEN": GLOBAL_WORKER_TOKEN,
            "WORKER_POLL_TIMEOUT_SECONDS": str(poll_timeout),
        }
    )
    config.API_HOST, config.API_PORT, config.CLIENT_TOKEN = "127.0.0.1", 0, "y" * 32
    engine = suite_app.build_engine(config=config)
    runner = engine.wiring.runner()
    runner.start()
    try:
        yield Orchestrator("embedded", f"http://127.0.0.1:{runner.port}")
    finally:
        runner.stop()


def redis_env(redis_url: str, **extra: str) -> dict[str, str]:
    """The environment of the session's Redis-mode processes (the suite app on Redis database 1)."""
    return service_env(
        AVTOMATIKA_APP="tests.apps.suite_app:engine", REDIS_URL=redis_url + "/1", CLIENT_TOKEN="x" * 32, **extra
    )


@pytest.fixture(scope="session")
def embedded() -> Iterator[Orchestrator]:
    with embedded_orchestrator() as orchestrator:
        yield orchestrator


@pytest.fixture(scope="session")
def redis_mode(redis_url: str) -> Iterator[Orchestrator]:
    env = redis_env(redis_url)
    worker = start_celery_worker(env)
    api, base = start_api(env)
    try:
        yield Orchestrator("redis", base, worker.output)
    finally:
        api.stop()
        worker.stop()


@pytest.fixture(params=["embedded", "redis"])
def orchestrator(request: pytest.FixtureRequest) -> Orchestrator:
    """Each test using this runs once per mode."""
    return request.getfixturevalue("embedded" if request.param == "embedded" else "redis_mode")
