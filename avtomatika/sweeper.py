"""The periodic sweep: timers that no request triggers, guarded by a storage lock (one sweeper per tick)."""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .engine import OrchestratorEngine

logger = logging.getLogger(__name__)
LOCK_NAME = "sweep"


class Sweeper:
    """Runs one sweep at a time; `run_once` returns how many jobs it acted on (-1: another sweeper held the lock)."""

    def __init__(self, engine: OrchestratorEngine) -> None:
        self.engine = engine

    def run_once(self, now: float | None = None) -> int:
        storage = self.engine.storage
        token = uuid.uuid4().hex
        ttl = max(self.engine.config.WATCHER_INTERVAL_SECONDS * 0.9, 1.0)
        if not storage.acquire_lock(LOCK_NAME, token, ttl):
            return -1
        try:
            events = self.engine.events
            acted = events.expire_leases(now) + events.sweep_due_jobs(now)
            for worker_id in self.engine.storage.expired_workers(now if now is not None else time.time()):
                logger.info("worker %s expired (no heartbeat)", worker_id)
            return acted
        finally:
            storage.release_lock(LOCK_NAME, token)
