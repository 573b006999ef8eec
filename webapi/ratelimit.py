"""Rate limits per client and per worker identity (never per IP), on the `limits` library.

Counters live in Redis in Redis mode (shared by every API process) and in memory in the embedded default.
A request over the limit gets 429 with `Retry-After`.

Each process counts requests locally and adds them to the shared counter in batches of ~1/20 of the limit
(one request at a time for small limits such as "3 per minute"): a Redis round trip per request was ~0.13 ms
of API CPU, and a batch lets a process overshoot a limit by at most ~5 % of it.
"""

from __future__ import annotations

import functools
import threading
import time

import limits
from flask import current_app
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from avtomatika.registry import Registry

from .errors import too_many_requests

BATCH_FRACTION = 20
IDLE_SECONDS = 60.0  # a process forgets an identity's local entries after this long without a request


class RateLimits:
    """Checks and counts one request of an identity against its limit."""

    def __init__(self, engine: Registry) -> None:
        config = engine.config
        self.enabled = config.RATE_LIMITING_ENABLED
        url = engine.redis_url
        self.limiter = FixedWindowRateLimiter(storage_from_string(url if url else "memory://"))
        self.defaults = {
            "client": limits.parse(config.RATE_LIMIT_CLIENT),
            "worker": limits.parse(config.RATE_LIMIT_WORKER),
        }
        self.prefix = config.REDIS_KEY_PREFIX
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[int, float]] = {}  # key -> (requests not yet counted, last request)
        self._blocked: dict[str, float] = {}  # key -> refused until
        self._pruned_at = time.time()

    def hit(self, kind: str, identity: str, override: str | None = None) -> None:
        """Count a request of `identity`; answer 429 with Retry-After when it is over its limit."""
        if not self.enabled:
            return
        item = self._parse(override) if override else self.defaults[kind]
        key = f"{self.prefix}:{kind}:{identity}"
        batch = max(1, item.amount // BATCH_FRACTION)
        now = time.time()
        with self._lock:
            if now - self._pruned_at > IDLE_SECONDS:
                self._prune(now)
            blocked_until = self._blocked.get(key, 0.0)
            if blocked_until > now:
                self._refuse(item, kind, blocked_until - now)
            count = self._pending.get(key, (0, now))[0] + 1
            if count < batch:
                self._pending[key] = (count, now)
                return
            self._pending.pop(key, None)
        if self.limiter.hit(item, key, cost=count):
            return
        reset = self.limiter.get_window_stats(item, key).reset_time
        with self._lock:
            self._blocked[key] = reset
        self._refuse(item, kind, reset - now)

    def _prune(self, now: float) -> None:
        """Forget idle identities, so memory stays bounded by the identities active in the last minute: an
        idle entry holds fewer than one batch of uncounted requests (~5 % of its limit), dropped here."""
        self._blocked = {key: until for key, until in self._blocked.items() if until > now}
        self._pending = {key: entry for key, entry in self._pending.items() if now - entry[1] <= IDLE_SECONDS}
        self._pruned_at = now

    def entries(self) -> int:
        """How many identities this process holds local state for (tests, diagnostics)."""
        with self._lock:
            return len(self._pending) + len(self._blocked)

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - a few distinct strings, one limiter per app
    def _parse(self, text: str) -> limits.RateLimitItem:
        return limits.parse(text)

    @staticmethod
    def _refuse(item: limits.RateLimitItem, kind: str, wait: float) -> None:
        too_many_requests(f"rate limit of {item} exceeded for this {kind}", {"limit": str(item)}, wait)


def rate_limits() -> RateLimits:
    """The rate limiter of the running app."""
    found: RateLimits = current_app.extensions["avtomatika.rate_limits"]
    return found
