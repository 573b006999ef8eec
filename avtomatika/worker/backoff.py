"""Exponential backoff with jitter for reconnects, and the Retry-After header of 429 answers."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from .errors import OrchestratorError, OrchestratorUnavailable, RateLimited


@dataclass(frozen=True)
class BackoffPolicy:
    """Delays between attempts after consecutive failures.

    The ceiling doubles from `initial` up to `maximum`; the delay is drawn uniformly from the upper half of the
    ceiling ("equal jitter"), so many workers that lost the same orchestrator spread out, yet none retries
    sooner than half the ceiling.
    """

    initial: float = 0.5
    maximum: float = 30.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial or self.multiplier < 1:
            raise ValueError(f"invalid backoff policy {self!r}")

    def ceiling(self, failures: int) -> float:
        """The largest delay after `failures` (>= 1) consecutive failures."""
        exponent = max(failures, 1) - 1
        # Cap the exponent first: 2.0 ** 2000 overflows a float.
        if exponent > 64:
            return self.maximum
        return min(self.maximum, self.initial * self.multiplier**exponent)

    def delay(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after `failures` (>= 1) consecutive failures; `rand` returns a float in [0, 1)."""
        ceiling = self.ceiling(failures)
        return ceiling / 2 + rand() * ceiling / 2


def retry_delay(
    error: OrchestratorError, failures: int, policy: BackoffPolicy, rand: Callable[[], float] = random.random
) -> float:
    """Seconds to wait before retrying a request that failed with `error`, the `failures`-th failure in a row.

    A 429's Retry-After wins; an unreachable URL with another URL still untried in this round is retried there
    at once; everything else backs off.
    """
    if isinstance(error, RateLimited) and error.retry_after is not None:
        return error.retry_after
    if isinstance(error, OrchestratorUnavailable) and not error.all_failed:
        return 0.0
    return policy.delay(failures, rand)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None if unusable.

    Args:
        value: The header value.
        now: Current epoch seconds, to turn an HTTP date into a delay.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError, IndexError):
            return None
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)
