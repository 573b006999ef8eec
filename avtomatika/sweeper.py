"""The periodic sweep: timers that no request triggers, guarded by a storage lock (one sweeper per tick)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from .config import Config
from .job import TERMINAL
from .results import TaskEvents
from .storage.base import StorageBackend
from .stream import WORKER_EXPIRED, EventStream, WorkerEvent
from .webhooks import WebhookDeliveries

logger = logging.getLogger(__name__)
LOCK_NAME = "sweep"


class Sweeper:
    """Runs one sweep at a time; `run_once` returns how many jobs it acted on (-1: another sweeper held the lock)."""

    def __init__(
        self,
        storage: StorageBackend,
        config: Config,
        events: TaskEvents,
        webhooks: WebhookDeliveries,
        stream: EventStream,
        reputations: Callable[[float], None] | None = None,
    ) -> None:
        self.storage = storage
        self.config = config
        self.events = events
        self.webhooks = webhooks
        self.stream = stream
        self.reputations = reputations

    def run_once(self, now: float | None = None) -> int:
        token = uuid.uuid4().hex
        ttl = max(self.config.WATCHER_INTERVAL_SECONDS * 0.9, 1.0)
        if not self.storage.acquire_lock(LOCK_NAME, token, ttl):
            return -1
        try:
            acted = self.events.expire_leases(now) + self.events.sweep_due_jobs(now)
            self.webhooks.deliver_due(now)
            moment = now if now is not None else time.time()
            expired = self.storage.expired_workers(moment)
            for worker_id in expired:
                logger.info("worker %s expired (no heartbeat)", worker_id)
            self.stream.emit([WorkerEvent(WORKER_EXPIRED, worker_id) for worker_id in expired])
            if self.reputations is not None:
                try:
                    self.reputations(moment)
                except Exception:  # history down: reputations stay as they are until the next sweep
                    logger.exception("recomputing worker reputations failed")
            self.storage.purge_expired(moment)
            for status in TERMINAL:  # records past their retention are gone; so go their index entries
                self.storage.trim_job_index(status.value, moment - self.config.JOB_RETENTION_SECONDS)
            return acted
        finally:
            self.storage.release_lock(LOCK_NAME, token)
