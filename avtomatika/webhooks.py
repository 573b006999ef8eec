"""Completion webhooks: a job created with `webhook_url` has its final view POSTed there once it ends.

The delivery is queued in the same commit that makes the job terminal (`QueueWebhook`), so it exists exactly
when the end does. It is tried at once in a background thread, never delaying the job; a failed attempt is
retried with exponential backoff, first by that thread, then by the periodic sweep, until the receiver
answers 2xx or `WEBHOOK_MAX_ATTEMPTS` is reached. A claim (a lease on the delivery) keeps two processes from
delivering it at once. Receivers get `X-Avtomatika-Delivery: <job id>` to drop a repeat after a crash.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from .config import Config
from .job import job_view
from .storage.base import StorageBackend
from .stream import JOB_ENDS, Event, JobEvent

logger = logging.getLogger(__name__)
LEASE_SECONDS = 30.0
MAX_ATTEMPTS = 12
IN_THREAD_ATTEMPTS = 4


def retry_delay(attempt: int) -> float:
    """Seconds before attempt `attempt + 1`: 1, 2, 4, ... capped at 5 minutes."""
    return float(min(2 ** (attempt - 1), 300))


_END_KINDS = frozenset(JOB_ENDS.values())


class WebhookDeliveries:
    """Delivers queued completion webhooks; subscribed to the event stream to try each one as its job ends."""

    def __init__(self, storage: StorageBackend, config: Config) -> None:
        self.storage = storage
        self.config = config

    def handle(self, event: Event) -> None:
        """A job that ended with a webhook queued: try the delivery now, in a background thread."""
        if isinstance(event, JobEvent) and event.kind in _END_KINDS and event.details.get("webhook"):
            threading.Thread(target=self._deliver_now, args=(event.job_id,), name="webhook", daemon=True).start()

    def _deliver_now(self, job_id: str) -> None:
        for _ in range(IN_THREAD_ATTEMPTS):
            outcome = self.deliver(job_id)
            if outcome is None:
                return
            time.sleep(max(outcome - time.time(), 0.0))

    def deliver_due(self, now: float | None = None) -> int:
        """The sweep's part: try every delivery that is due; returns how many were tried."""
        moment = time.time() if now is None else now
        due = self.storage.due_webhooks(moment)
        for job_id in due:
            self.deliver(job_id, moment)
        return len(due)

    def deliver(self, job_id: str, now: float | None = None) -> float | None:
        """One attempt (if the delivery is due and this process claims it); returns when to try again, or
        None when there is nothing more to do (delivered, given up, not due, or taken by another process)."""
        moment = time.time() if now is None else now
        attempt = self.storage.claim_webhook(job_id, moment, LEASE_SECONDS)
        if attempt is None:
            return None
        job = self.storage.get_job(job_id)
        if job is None or not job.get("webhook_url"):
            self.storage.finish_webhook(job_id, None)
            return None
        if self._post(job["webhook_url"], job_id, job_view(job)):
            self.storage.finish_webhook(job_id, None)
            return None
        if attempt >= MAX_ATTEMPTS:
            logger.warning("completion webhook of job %s: giving up after %s attempts", job_id, attempt)
            self.storage.finish_webhook(job_id, None)
            return None
        retry_at = time.time() + retry_delay(attempt)
        self.storage.finish_webhook(job_id, retry_at)
        return retry_at

    @staticmethod
    def _post(url: str, job_id: str, view: dict[str, Any]) -> bool:
        import httpx

        try:
            answer = httpx.post(url, json=view, headers={"X-Avtomatika-Delivery": job_id}, timeout=10)
        except httpx.HTTPError as exc:
            logger.info("completion webhook of job %s failed: %s", job_id, exc)
            return False
        if 200 <= answer.status_code < 300:
            return True
        logger.info("completion webhook of job %s: the receiver answered %s", job_id, answer.status_code)
        return False
