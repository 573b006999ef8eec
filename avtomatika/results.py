"""Events that reach a waiting job from outside a step: worker results, cancellation, progress, timeouts.

Every change is a compare-and-set on the job record; an index condition (the lease is still held by
this worker, the task is still queued) is checked in the same atomic operation. A lost race re-reads the
job and decides again, so two events for one job can never both apply.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from .approvals import ApprovalEvents
from .branches import BRANCH_ACCEPTED, BranchEvents, branch_id_of
from .core import RUNNABLE, OrchestratorCore, Pending
from .errors import ConflictError, JobAlreadyEnded, JobNotFound, NotFound, NotRetryable, StaleResult
from .job import Job, JobStatus, set_status
from .ops import EndLease, HoldsLease, JobChanges, NotifyCancel, Withdraw
from .outcomes import CANCELLED, TRANSIENT_ERROR, apply_result, attempt_events
from .stream import TASK_TIMEOUT
from .waits import current_task, wait_of

logger = logging.getLogger(__name__)
ATTEMPTS = 16
# What an ended lease remembers when the orchestrator, not the worker, ended it: a later result of that
# worker is then stale (409), not a repeat of an accepted result (200).
LEASE_EXPIRED = "lease_expired"
JOB_TIMED_OUT = "job_timed_out"
NOT_A_RESULT = frozenset({LEASE_EXPIRED, JOB_TIMED_OUT})


class TaskEvents:
    """Applies worker results, cancellations, progress and timeouts to jobs through the engine core."""

    def __init__(self, core: OrchestratorCore) -> None:
        self.core = core
        self.approvals = ApprovalEvents(core)
        self.branches = BranchEvents(core)
        self.storage = core.storage
        self.config = core.config

    # -- results ------------------------------------------------------------------------------------------

    def accept_result(
        self, job_id: str, task_id: str, worker_id: str, result: dict[str, Any], *, lease_expired: bool = False
    ) -> str:
        """Apply a worker's result; returns the answer status of SPEC §4 (`result_accepted_success`, ...).

        Raises `JobNotFound`, `StaleResult` (the worker does not hold the lease) or `ConflictError`.
        `lease_expired`: the result is the sweep's TRANSIENT_ERROR for an expired lease, so the worker's own
        result arriving later must be refused as stale.
        """
        if self.core.scheduler.chords and branch_id_of(task_id):
            # A fan-in by chord needs no look at the job: the branch's own checks (the lease, the attempt)
            # are in `record_branch`, and a job that stopped waiting ended its branches' leases.
            answer = self.branches.accept(
                {"id": job_id}, task_id, worker_id, result, LEASE_EXPIRED if lease_expired else BRANCH_ACCEPTED
            )
            if answer is not None:
                return answer
            late = self.storage.get_job(job_id)  # not accepted: answer as for any late result
            if late is None:
                raise JobNotFound("job not found", job_id=job_id)
            return self._late(late, task_id, worker_id)
        for _ in range(ATTEMPTS):
            job = self.storage.get_job(job_id)
            if job is None:
                raise JobNotFound("job not found", job_id=job_id)
            if job["status"] == JobStatus.WAITING_FOR_PARALLEL_TASKS.value and branch_id_of(task_id):
                answer = self.branches.accept(
                    job, task_id, worker_id, result, LEASE_EXPIRED if lease_expired else BRANCH_ACCEPTED
                )
                return answer if answer is not None else self._late(job, task_id, worker_id)
            task = current_task(job) or {}
            if task.get("task_id") != task_id or job["status"] != JobStatus.WAITING_FOR_WORKER.value:
                return self._late(job, task_id, worker_id)
            blueprint = self.core.blueprints.get(job["blueprint_name"])
            if blueprint is None:
                raise ConflictError(f"blueprint {job['blueprint_name']!r} is not registered here")
            seq = job["seq"]
            attempt, state = dict(task), job["current_state"]
            outcome = apply_result(job, result, blueprint, self.config)
            remembered = LEASE_EXPIRED if lease_expired else outcome.answer
            changes = JobChanges().add(HoldsLease(task_id, worker_id), EndLease(task_id, remembered))
            next_step = outcome.delay if outcome.next in ("step", "retry") else None
            events = attempt_events(
                attempt, state, worker_id, result, timed_out=lease_expired, retried=outcome.next == "retry"
            )
            if job["current_state"] != state:
                events[0][1]["previous_state"], events[0][1]["next_state"] = state, job["current_state"]
            verdict = self.core.commit(job, seq, changes, next_step=next_step, events=events)
            if verdict == "lease":  # `job` holds the outcome that was not applied: report the stored job
                return self._late(self.storage.get_job(job_id) or job, task_id, worker_id)
            if verdict != "ok":
                continue
            return outcome.answer
        raise ConflictError("the job kept changing concurrently; send the result again")

    def _late(self, job: Job, task_id: str, worker_id: str) -> str:
        answer = self.storage.result_answer(task_id, worker_id)
        if answer is not None and answer not in NOT_A_RESULT:
            # The worker's own accepted result again, or the holder's result after a cancel (acknowledged).
            return answer
        raise StaleResult(
            "stale result: this worker does not hold the task's lease (it expired, moved or was never given)",
            task_id=task_id,
            job_status=job["status"],
        )

    # -- cancellation -------------------------------------------------------------------------------------

    def cancel_job(self, job_id: str) -> str:
        """Cancel a non-terminal job: withdraw its queued task, tell the worker holding it.

        Returns `cancellation_request_sent` when the holding worker has a WebSocket open, else
        `cancellation_request_accepted`. Raises `JobNotFound`, `JobAlreadyEnded` or `ConflictError`.
        """
        for _ in range(ATTEMPTS):
            job = self.storage.get_job(job_id)
            if job is None:
                raise JobNotFound("job not found", job_id=job_id)
            if JobStatus(job["status"]).is_terminal:
                raise JobAlreadyEnded(f"job is already {job['status']}", status=job["status"])
            seq = job["seq"]
            changes, holder = self._release_task(job, CANCELLED)
            job["error_message"] = "cancelled by the client"
            set_status(job, JobStatus.CANCELLED)
            verdict = self.core.commit(job, seq, changes)
            if verdict == "ok":
                self._cancel_child(job)
                told = holder is not None and self.storage.ws_connected(holder)
                return "cancellation_request_sent" if told else "cancellation_request_accepted"
        raise ConflictError("the job kept changing concurrently; try again")

    def _cancel_child(self, job: Job) -> None:
        """A parent that stopped waiting (cancelled, timed out) cancels its running child, and so on down."""
        child = wait_of(job, "child")
        if child is None:
            return
        # a child that already ended (its end finds the parent no longer waiting) or is gone: nothing to do
        with contextlib.suppress(NotFound, ConflictError):
            self.cancel_job(child["child_id"])

    def _release_task(self, job: Job, answer: str) -> tuple[JobChanges, str | None]:
        """Changes that take a waiting job's task away from the queue or from the worker holding it."""
        changes = JobChanges()
        if job["status"] == JobStatus.WAITING_FOR_PARALLEL_TASKS.value:
            changes.add(*self.branches.release_ops(job, answer))
            job_id = job["id"]
            changes.after.append(lambda: self.storage.drop_branches(job_id))
            return changes, None
        task = current_task(job)
        if not task or job["status"] != JobStatus.WAITING_FOR_WORKER.value:
            return changes, None
        lease = self.storage.get_lease(task["task_id"])
        if lease is not None:
            changes.add(
                HoldsLease(task["task_id"], lease.worker_id),
                EndLease(task["task_id"], answer),
                NotifyCancel(lease.worker_id, task["task_id"], job["id"]),
            )
            return changes, lease.worker_id
        if task.get("member"):
            # Only commit if the task is still queued: a worker that claimed it meanwhile must be told.
            changes.add(Withdraw(task.get("queue", task["task_type"]), task["member"], required=True))
        return changes, None

    # -- operator retry -----------------------------------------------------------------------------------

    def retry_job(self, job_id: str) -> None:
        """Resume a failed or quarantined job at its current state (SPEC §7): its handler runs again with
        fresh retry and transition counters. Raises `JobNotFound`, `NotRetryable` or `ConflictError`."""
        for _ in range(ATTEMPTS):
            job = self.storage.get_job(job_id)
            if job is None:
                raise JobNotFound("job not found", job_id=job_id)
            if job["status"] not in (JobStatus.FAILED.value, JobStatus.QUARANTINED.value):
                raise NotRetryable(f"only failed or quarantined jobs can be retried; this one is {job['status']}")
            seq = job["seq"]
            set_status(job, JobStatus.PENDING, operator=True)
            job.update(retry_count=0, transitions=0, error_message=None, wait=None)
            job.pop("error_traceback", None)
            if self.core.commit(job, seq, next_step=0.0) == "ok":
                return
        raise ConflictError("the job kept changing concurrently; try again")

    # -- progress -----------------------------------------------------------------------------------------

    def record_progress(self, job_id: str, task_id: str, worker_id: str, progress: float | None, message: str) -> bool:
        """Store a progress event of the task's lease holder, shown in the job view; False if it is not theirs.

        The event is kept on the lease (one small atomic write), not in the job record: progress never
        rewrites the job, bumps its seq or races a result's commit, and it ends with the lease."""
        job = self.storage.get_job(job_id)
        task = (current_task(job) if job is not None else None) or {}
        if job is None or task.get("task_id") != task_id or job["status"] != JobStatus.WAITING_FOR_WORKER.value:
            return False
        event = {"task_id": task_id, "progress": progress, "message": message, "at": time.time()}
        return self.storage.record_lease_progress(task_id, worker_id, event)

    # -- timers -------------------------------------------------------------------------------------------

    def expire_leases(self, now: float | None = None, limit: int = 500) -> int:
        """Expired leases become TRANSIENT_ERROR failures of their attempt (retried or quarantined)."""
        moment = time.time() if now is None else now
        count = 0
        for lease in self.storage.expired_leases(moment, limit):
            expired = {
                "status": "failure",
                "error": {
                    "code": TRANSIENT_ERROR,
                    "message": f"lease expired: worker {lease.worker_id} did not report in time",
                },
            }
            try:
                self.accept_result(lease.job_id, lease.task_id, lease.worker_id, expired, lease_expired=True)
            except (NotFound, ConflictError):
                self.storage.drop_lease(lease.task_id)
            count += 1
        return count

    def sweep_due_jobs(self, now: float | None = None, limit: int = 500) -> int:
        """Look at every job whose watch deadline passed: stalled steps, dispatch and result timeouts."""
        moment = time.time() if now is None else now
        count = 0
        for job_id in self.storage.stalled_jobs(moment, limit):
            job = self.storage.get_job(job_id)
            if job is None or JobStatus(job["status"]).is_terminal:
                self.storage.watch_job(job_id, None)
                continue
            count += self._sweep_job(job, moment)
        return count

    def _sweep_job(self, job: Job, now: float) -> int:
        status = JobStatus(job["status"])
        if job.get("result_timeout") and now >= job["created_at"] + job["result_timeout"]:
            return self._time_out(job, f"result_timeout of {job['result_timeout']:g} s exceeded")
        task = current_task(job) or {}
        leased = bool(task) and self.storage.get_lease(task["task_id"]) is not None
        if (
            status == JobStatus.WAITING_FOR_WORKER
            and job.get("dispatch_timeout")
            and not leased
            and now >= task.get("dispatched_at", now) + job["dispatch_timeout"]
        ):
            return self._time_out(job, f"no worker took task {task['task_type']} within dispatch_timeout")
        if status == JobStatus.WAITING_FOR_PARALLEL_TASKS and self.branches.sweep(job):
            return 1
        child = wait_of(job, "child")
        if status == JobStatus.WAITING_FOR_SUB_JOB and child and self.core.resume_parent(child["child_id"], job["id"]):
            return 1
        if status == JobStatus.WAITING_FOR_HUMAN and wait_of(job, "approval"):
            acted = self.approvals.time_out(job, now)
            if acted:
                return acted
        if status in RUNNABLE and job.get("seq") is not None:
            logger.warning("job %s made no progress at seq=%s: re-sending its step", job["id"], job["seq"])
            self.storage.watch_job(job["id"], now + self.config.STEP_STALL_SECONDS)
            self.core.scheduler.schedule_step(
                job["id"], job["seq"], blueprint=job["blueprint_name"], state=job["current_state"], resent=True
            )
            return 1
        self.storage.watch_job(job["id"], self.core.watch_deadline(job, now=now, leased=leased))
        return 0

    def _time_out(self, job: Job, message: str) -> int:
        """Fail the job; if anything changed meanwhile it stays due and the next sweep decides again."""
        seq = job["seq"]
        task = current_task(job)
        events: list[Pending] = []
        if task and job["status"] == JobStatus.WAITING_FOR_WORKER.value:
            timeout = {"task_id": task["task_id"], "attempt": task.get("attempt", 1), "details": {"reason": message}}
            events.append((TASK_TIMEOUT, timeout))
        changes, _ = self._release_task(job, JOB_TIMED_OUT)
        job["error_message"] = message
        set_status(job, JobStatus.FAILED)
        if self.core.commit(job, seq, changes, events=events) != "ok":
            return 0
        self._cancel_child(job)
        return 1
