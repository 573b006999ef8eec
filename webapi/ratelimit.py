"""Rate limits per client and per worker identity (never per IP), on the `limits` library.

Counters live in Redis in Redis mode (shared by every API process) and in memory in the embedded default.
A request over the limit gets 429 with `Retry-After`.
"""

from __future__ import annotations

import math
import time

import limits
from flask import current_app
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from avtomatika.engine import OrchestratorEngine

from .errors import abort_json


class RateLimits:
    """Checks and counts one request of an identity against its limit."""

    def __init__(self, engine: OrchestratorEngine) -> None:
        config = engine.config
        self.enabled = config.RATE_LIMITING_ENABLED
        url = engine.redis_url
        self.limiter = FixedWindowRateLimiter(storage_from_string(url if url else "memory://"))
        self.defaults = {
            "client": limits.parse(config.RATE_LIMIT_CLIENT),
            "worker": limits.parse(config.RATE_LIMIT_WORKER),
        }
        self.prefix = config.REDIS_KEY_PREFIX

    def hit(self, kind: str, identity: str, override: str | None = None) -> None:
        """Count a request of `identity`; answer 429 with Retry-After when it is over its limit."""
        if not self.enabled:
            return
        item = limits.parse(override) if override else self.defaults[kind]
        key = f"{self.prefix}:{kind}:{identity}"
        if self.limiter.hit(item, key):
            return
        reset = self.limiter.get_window_stats(item, key).reset_time
        wait = max(1, math.ceil(reset - time.time()))
        abort_json(
            429, f"rate limit of {item} exceeded for this {kind}", {"limit": str(item)}, {"Retry-After": str(wait)}
        )


def rate_limits() -> RateLimits:
    """The rate limiter of the running app."""
    found: RateLimits = current_app.extensions["avtomatika.rate_limits"]
    return found
