"""Human decisions: a job waiting for approval moves on when a decision arrives or its timeout passes.

The decision is one compare-and-set on the job record, like every event from outside a step: a decision and
a timeout (or a cancel) for the same job can never both apply.
"""

from __future__ import annotations

import hmac
import time

from .core import OrchestratorCore
from .errors import ConflictError, InvalidDecision, JobNotFound, NotWaiting
from .job import Job, JobStatus
from .notifiers import approval_token
from .stream import APPROVAL_RECEIVED
from .transitions import fail
from .waits import wait_of

ATTEMPTS = 16


class ApprovalEvents:
    """Applies decisions and approval timeouts through the engine core."""

    def __init__(self, core: OrchestratorCore) -> None:
        self.core = core
        self.storage = core.storage

    def token_matches(self, job: Job, token: str) -> bool:
        """Whether `token` is the approval token of the job's current approval request (constant time)."""
        requested_at = job.get("approval_requested_at")
        if requested_at is None or not token:
            return False
        expected = approval_token(self.storage.shared_secret("approval"), job["id"], requested_at)
        return hmac.compare_digest(expected.encode(), token.encode())

    def decide(self, job_id: str, decision: object) -> None:
        """Apply `decision` (a key of the approval's transitions) to a job waiting for a human.

        Raises `JobNotFound`, `NotWaiting` (409), `InvalidDecision` (400; the job keeps waiting) or
        `ConflictError`.
        """
        for _ in range(ATTEMPTS):
            job = self.storage.get_job(job_id)
            if job is None:
                raise JobNotFound("job not found", job_id=job_id)
            wait = wait_of(job, "approval")
            if wait is None or job["status"] != JobStatus.WAITING_FOR_HUMAN.value:
                raise NotWaiting("job is not waiting for a human decision", status=job["status"])
            transitions = wait["transitions"]
            if not isinstance(decision, str) or decision not in transitions:
                raise InvalidDecision(
                    f"invalid decision {str(decision)[:100]!r} for this job", decisions=sorted(transitions)
                )
            if self._apply(job, transitions[decision], f"approval decision {decision!r}", decision):
                return
        raise ConflictError("the job kept changing concurrently; try again")

    def time_out(self, job: Job, now: float) -> int:
        """The sweep's part: take the `timeout` decision (or fail the job) once the deadline passed."""
        wait = wait_of(job, "approval")
        if wait is None or not wait.get("deadline") or now < wait["deadline"]:
            return 0
        target = wait["transitions"].get("timeout")
        if target is not None:
            return 1 if self._apply(job, target, "approval timeout", "timeout") else 0
        seq = job["seq"]
        fail(job, f"no decision within the approval timeout ({wait['deadline'] - wait['requested_at']:g} s)")
        return 1 if self.core.commit(job, seq) == "ok" else 0

    def _apply(self, job: Job, target: str, cause: str, decision: str) -> bool:
        job["state_history"].setdefault("approvals", []).append({"cause": cause, "at": time.time()})
        received = (APPROVAL_RECEIVED, {"details": {"decision": decision}})
        return self.core.move_on(job, target, cause, event=received)
