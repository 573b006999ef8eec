"""Fixtures of the SDK tests: a stub orchestrator on a free port and fast worker settings."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from avtomatika.worker import BackoffPolicy, Worker

from .stub import StubOrchestrator

TOKEN = "worker-token"
FAST = {
    "poll_timeout": 0.2,
    "heartbeat_interval": 0.05,
    "http_timeout": 2.0,
    "shutdown_grace_period": 1.0,
    "backoff": BackoffPolicy(initial=0.01, maximum=0.05),
    "use_websocket": False,
}


@pytest.fixture
def stub() -> Iterator[StubOrchestrator]:
    orchestrator = StubOrchestrator(TOKEN, poll_timeout=0.2)
    orchestrator.start()
    yield orchestrator
    orchestrator.stop()


def make_worker(urls: str | list[str], worker_id: str = "w1", **options: Any) -> Worker:
    """A worker with settings that keep the tests fast."""
    settings = {**FAST, **options}
    return Worker(worker_id, urls, settings.pop("token", TOKEN), **settings)


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run an async test scenario."""
    asyncio.run(scenario())


async def until(stub: StubOrchestrator, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait (off the event loop) until `predicate` holds; it is re-checked on every stub state change."""
    await asyncio.to_thread(stub.wait_for, predicate, timeout)
