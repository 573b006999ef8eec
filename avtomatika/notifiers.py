"""Notifiers of human approvals: `await_human_approval(integration=...)` names one; it is told once the job
waits. Built in: `log` and `webhook` (POSTs to `APPROVAL_WEBHOOK_URL`); `engine.register_notifier` adds others.

A notifier runs after the commit that made the job wait, in the process that ran the step; a failing or
missing notifier is logged and the job waits as usual (the decision can still be posted).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from .config import Config

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApprovalRequest:
    """What a notifier is told: the job, the question, the possible decisions and the job's approval token
    (an unguessable per-job secret that authorises `POST /_public/webhooks/approval/{job_id}`)."""

    job_id: str
    integration: str
    message: str
    decisions: list[str]
    approval_token: str
    deadline: float | None
    approval_path: str

    def payload(self) -> dict[str, Any]:
        """The JSON body the `webhook` notifier sends."""
        return asdict(self)


Notifier = Callable[[ApprovalRequest], None]


def approval_token(secret: str, job_id: str, requested_at: float) -> str:
    """The approval token of one approval request: derived (HMAC-SHA256), never stored."""
    message = f"{job_id}:{requested_at!r}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def log_notifier(request: ApprovalRequest) -> None:
    """Log the request (never the token: the owner finds it in the job view)."""
    logger.info(
        "job %s waits for a human decision (%s): %s; decide with POST %s",
        request.job_id,
        ", ".join(request.decisions),
        request.message,
        request.approval_path,
    )


def webhook_notifier(config: Config) -> Notifier:
    """POST the request, token included, to `APPROVAL_WEBHOOK_URL` (in a thread: a slow receiver never
    holds up the step that made the job wait)."""

    def notify(request: ApprovalRequest) -> None:
        url = config.APPROVAL_WEBHOOK_URL
        if not url:
            logger.warning("job %s: the 'webhook' notifier needs APPROVAL_WEBHOOK_URL", request.job_id)
            return
        threading.Thread(target=_post, args=(url, request), name="approval-webhook", daemon=True).start()

    return notify


def _post(url: str, request: ApprovalRequest) -> None:
    import httpx

    try:
        answer = httpx.post(url, json=request.payload(), timeout=10)
        if answer.status_code >= 300:
            logger.warning("approval webhook for job %s answered %s", request.job_id, answer.status_code)
    except httpx.HTTPError as exc:
        logger.warning("approval webhook for job %s failed: %s", request.job_id, exc)
