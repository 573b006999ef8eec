"""Fixtures of the worker-protocol tests: the engine behind the `orchestrator` under test, reachable in-process.

Embedded mode: the session's own engine (the one serving `orchestrator.base`). Redis mode: an engine in this
process on the same Redis database as the API and Celery worker processes; its step messages go to the same
broker, so the Celery worker process runs them.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tests.apps import suite_app
from tests.conftest import Orchestrator, embedded_orchestrator, redis_env
from tests.services import GLOBAL_WORKER_TOKEN, start_api
from tests.workers.support import LONG_POLL_TIMEOUT


@pytest.fixture(scope="session")
def redis_engine(redis_url: str) -> Iterator[object]:
    from avtomatika.config import Config

    config = Config(
        {"REDIS_URL": redis_url + "/1", "GLOBAL_WORKER_TOKEN": GLOBAL_WORKER_TOKEN, "WORKER_POLL_TIMEOUT_SECONDS": "2"}
    )
    built = suite_app.build_engine(config=config)
    try:
        yield built
    finally:
        if built._wiring is not None and built._wiring._celery is not None:
            built._wiring._celery.close()
        built.storage.close()


def _embedded_engine(base: str) -> object:
    """The engine of the session's EmbeddedRunner listening at `base` (tests/conftest.py keeps it private)."""
    from avtomatika.runner import EmbeddedRunner

    port = int(base.rsplit(":", 1)[1])
    for candidate in gc.get_objects():
        try:
            if isinstance(candidate, EmbeddedRunner) and candidate.port == port:
                return candidate.engine
        except ReferenceError:  # a dead weak proxy among the objects
            continue
    raise AssertionError(f"no EmbeddedRunner listens on port {port}")


@pytest.fixture(autouse=True)
def _close_http_workers() -> Iterator[None]:
    from tests.workers.support import close_workers

    yield
    close_workers()


@pytest.fixture
def engine(orchestrator, request: pytest.FixtureRequest) -> object:
    """The engine the `orchestrator` under test runs on, in this process (storage, events, sweep)."""
    if orchestrator.mode == "embedded":
        return _embedded_engine(orchestrator.base)
    return request.getfixturevalue("redis_engine")


# -- orchestrators holding long-polls for LONG_POLL_TIMEOUT (tests of which blocked poll a dispatch wakes) --


@pytest.fixture(scope="session")
def long_poll_embedded() -> Iterator[Orchestrator]:
    with embedded_orchestrator(poll_timeout=LONG_POLL_TIMEOUT) as orchestrator:
        yield orchestrator


@pytest.fixture(scope="session")
def long_poll_redis(redis_url: str, redis_mode: Orchestrator) -> Iterator[Orchestrator]:
    """A second API process on the session's Redis database; the session's Celery worker runs its steps."""
    api, base = start_api(redis_env(redis_url, WORKER_POLL_TIMEOUT_SECONDS=str(LONG_POLL_TIMEOUT)))
    try:
        yield Orchestrator("redis", base, redis_mode.step_log)
    finally:
        api.stop()
