"""Backoff delays and Retry-After parsing (pure functions)."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from avtomatika.worker import BackoffPolicy, OrchestratorUnavailable, RateLimited
from avtomatika.worker.backoff import parse_retry_after, retry_delay


def test_ceiling_doubles_up_to_the_maximum() -> None:
    policy = BackoffPolicy(initial=0.5, maximum=4.0)
    assert [policy.ceiling(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert policy.ceiling(10_000) == 4.0  # no float overflow


def test_delay_is_jittered_within_the_upper_half_of_the_ceiling() -> None:
    policy = BackoffPolicy(initial=1.0, maximum=8.0)
    assert policy.delay(3, rand=lambda: 0.0) == 2.0
    assert policy.delay(3, rand=lambda: 0.999) == pytest.approx(3.998)
    delays = {policy.delay(3) for _ in range(50)}
    assert all(2.0 <= d < 4.0 for d in delays) and len(delays) > 1


def test_invalid_policies_are_refused() -> None:
    for kwargs in ({"initial": 0}, {"initial": 2, "maximum": 1}, {"multiplier": 0.5}):
        with pytest.raises(ValueError):
            BackoffPolicy(**kwargs)  # type: ignore[arg-type]


def test_retry_after_seconds_and_dates() -> None:
    assert parse_retry_after("3", now=0) == 3.0
    assert parse_retry_after(" 1.5 ", now=0) == 1.5
    assert parse_retry_after("-4", now=0) == 0.0
    assert parse_retry_after(formatdate(1_000_010, usegmt=True), now=1_000_000) == pytest.approx(10)
    assert parse_retry_after(formatdate(999_000, usegmt=True), now=1_000_000) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "nan"])
def test_unusable_retry_after_is_none(value: str | None) -> None:
    assert parse_retry_after(value, now=0) is None


def test_retry_delay_after_each_kind_of_failure() -> None:
    policy = BackoffPolicy(initial=1.0, maximum=8.0)
    half = lambda: 0.5  # noqa: E731
    limited = RateLimited("429", url="http://a", retry_after=7.0)
    assert retry_delay(limited, 1, policy, half) == 7.0
    assert retry_delay(RateLimited("429", url="http://a", retry_after=None), 2, policy, half) == 1.5
    assert retry_delay(OrchestratorUnavailable("down", url="http://a", all_failed=False), 3, policy, half) == 0.0
    assert retry_delay(OrchestratorUnavailable("down", url="http://a", all_failed=True), 3, policy, half) == 3.0
