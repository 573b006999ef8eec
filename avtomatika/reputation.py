"""Worker reputation (SPEC §8): recomputed from history, never taken from the worker.

A worker's reputation is its share of successful attempts among its recent attempts (`REPUTATION_WINDOW_SECONDS`),
timeouts counted as failures, with one success of credit so that a new worker starts at 1.0 and one bad
attempt does not sink it to 0: `(successes + 1) / (attempts + 1)`. The `best_value` dispatch strategy divides
cost by it; `cheapest` ignores it. The sweep refreshes the reputation of every live worker.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

from .storage.base import StorageBackend

logger = logging.getLogger(__name__)


class OutcomeSource(Protocol):
    """Where attempt outcomes come from (the history store)."""

    def worker_outcomes(self, since: float) -> dict[str, dict[str, int]]:
        """Per worker: counts of `success`, `failure` and `timeout` attempts since `since` (epoch seconds)."""


def reputation(outcomes: Mapping[str, int]) -> float:
    """`(successes + 1) / (successes + failures + timeouts + 1)`, in (0, 1]."""
    successes = int(outcomes.get("success", 0))
    attempts = successes + int(outcomes.get("failure", 0)) + int(outcomes.get("timeout", 0))
    return (successes + 1) / (attempts + 1)


def refresh_reputations(storage: StorageBackend, source: OutcomeSource, window: float, now: float) -> dict[str, float]:
    """Recompute and store the reputation of every live worker; returns what was stored."""
    outcomes = source.worker_outcomes(now - window)
    values = {w["worker_id"]: reputation(outcomes.get(w["worker_id"], {})) for w in storage.list_workers()}
    storage.set_reputations(values)
    return values
