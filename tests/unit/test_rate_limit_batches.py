"""Batched rate-limit counting: a process overshoots a limit by at most ~1/20 of it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from flask import Flask

from avtomatika.config import Config
from webapi.errors import ApiError
from webapi.ratelimit import RateLimits


def _limits(**settings: str) -> RateLimits:
    engine = SimpleNamespace(config=Config(settings), redis_url="")
    return RateLimits(engine)  # type: ignore[arg-type]


def _allowed(limiter: RateLimits, requests: int, identity: str = "w1") -> int:
    allowed = 0
    with Flask(__name__).test_request_context():
        for _ in range(requests):
            try:
                limiter.hit("worker", identity)
                allowed += 1
            except ApiError as exc:
                assert exc.status == 429 and int(exc.headers["Retry-After"]) >= 1
    return allowed


def test_large_limit_is_counted_in_batches_with_bounded_overshoot():
    limiter = _limits(RATE_LIMIT_WORKER="100 per minute")
    allowed = _allowed(limiter, 300)
    assert 100 <= allowed <= 105


def test_small_limit_is_exact():
    limiter = _limits(RATE_LIMIT_WORKER="3 per minute")
    assert _allowed(limiter, 10) == 3


def test_identities_are_counted_apart():
    limiter = _limits(RATE_LIMIT_WORKER="3 per minute")
    assert _allowed(limiter, 5, "a") == 3
    assert _allowed(limiter, 5, "b") == 3


@pytest.mark.parametrize("setting", ["false", "0"])
def test_disabled_never_refuses(setting):
    limiter = _limits(RATE_LIMIT_WORKER="1 per minute", RATE_LIMITING_ENABLED=setting)
    assert _allowed(limiter, 20) == 20


def test_idle_identities_are_forgotten(monkeypatch):
    """Memory is bounded by the identities active in the last minute, not by every identity ever seen."""
    import webapi.ratelimit as ratelimit

    clock = [1_000_000.0]
    monkeypatch.setattr(ratelimit.time, "time", lambda: clock[0])
    limiter = _limits(RATE_LIMIT_WORKER="100 per minute")
    for n in range(500):
        _allowed(limiter, 1, identity=f"w{n}")
    assert _allowed(limiter, 200, identity="busy") < 200  # this one is blocked for its window
    assert limiter.entries() == 501
    clock[0] += ratelimit.IDLE_SECONDS + 1
    _allowed(limiter, 1, identity="fresh")
    assert limiter.entries() <= 2  # "fresh", and "busy" only while its block lasts
