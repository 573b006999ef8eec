"""Fan-out / fan-in (`dispatch_parallel`): branch outcomes, the fan-in, and the sweep's backstop.

Each branch is a task of its own (queued for HTTP workers, or a native Celery task), retried like a single
task. Its outcome is recorded atomically beside the job (`record_branch`: the worker must hold the lease and
the branch must still run that attempt), so the branch ledger is the truth. In Redis mode the fan-in is a
Celery chord: one parked member per branch, completed from the result path with `mark_as_done`, whose body
runs the aggregator state; in the embedded default the last outcome triggers it. Either way the fan-in is a
compare-and-set on the job, so the aggregator runs once; the sweep runs a fan-in that never fired (a crash
between taking a parked context and completing its member leaves the chord short, not the fan-in).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from .core import OrchestratorCore, Pending, job_event
from .dispatcher import next_attempt
from .job import Job, JobStatus
from .ops import EndLease, NotifyCancel, Withdraw
from .outcomes import INVALID_INPUT_ERROR, PERMANENT_ERROR, attempt_events
from .stream import BRANCH_FINISHED, TASK_FINISHED
from .tasks import NATIVE_WORKER, Lease, QueueEntry
from .waits import wait_of

logger = logging.getLogger(__name__)
BRANCH_ACCEPTED = "parallel_branch_result_accepted"
ATTEMPTS = 16


def branch_id_of(task_id: str) -> str | None:
    """The branch of a branch task id (`<branch id>~<attempt>`), or None for a single task's id."""
    branch, sep, _ = task_id.rpartition("~")
    return branch if sep else None


def branch_outcome(record: dict[str, Any], result: dict[str, Any], max_retries: int) -> dict[str, Any] | None:
    """A branch's final outcome for the aggregator, or None when the attempt is retried.

    Like a single task: `TRANSIENT_ERROR` (or an unknown code) is retried up to `JOB_MAX_RETRIES`; but a
    plain failure, `PERMANENT_ERROR` and `INVALID_INPUT_ERROR` are final outcomes the aggregator decides on.
    """
    status = result.get("status") or "success"
    data = result.get("data") or {}
    outcome: dict[str, Any] = {"status": status, "data": data, "task_type": record["task_type"]}
    if status != "failure":
        return outcome
    error = result.get("error") or {}
    outcome["error"] = error
    code = error.get("code")
    if code is None or code in (PERMANENT_ERROR, INVALID_INPUT_ERROR):
        return outcome
    if int(record.get("attempt", 1)) <= max_retries:
        return None
    outcome["error"] = {**error, "message": f"{error.get('message') or code} (after {max_retries} retries)"}
    return outcome


class BranchEvents:
    """Applies branch outcomes and runs fan-ins through the engine core."""

    def __init__(self, core: OrchestratorCore) -> None:
        self.core = core
        self.storage = core.storage
        self.config = core.config

    def accept(self, job: Job, task_id: str, worker_id: str, result: dict[str, Any], answer: str) -> str | None:
        """Record a branch attempt's result; None when it is not this worker's current attempt (late)."""
        branch_id = branch_id_of(task_id)
        if branch_id is None:
            return None
        if self.core.stream.wants(TASK_FINISHED) and "seq" not in job:
            # A fan-in by chord did not read the job; the stream needs its commit counter, read before this
            # branch is recorded so that it is the fan-out's (the fan-in needs this branch first).
            record, found = self.storage.branch_and_job(job["id"], branch_id)
            job = found or job
        else:
            record = self.storage.branch(job["id"], branch_id)
        if record is None or record.get("task_id") != task_id:
            return None
        final = branch_outcome(record, result, self.config.JOB_MAX_RETRIES)
        retry: dict[str, Any] | None = None
        entry: QueueEntry | None = None
        lease: Lease | None = None
        message: tuple[str, str] | None = None
        if final is None:
            retry = dict(next_attempt(record, time.time()))  # type: ignore[arg-type]
            retry["task_id"] = f"{branch_id}~{retry['attempt']}"
            if record.get("native"):
                deadline = retry["dispatched_at"] + retry["timeout"]
                lease = Lease(retry["task_id"], job["id"], NATIVE_WORKER, deadline, retry["task_type"])
                # Redis mode: the retry's Celery message is pushed by the script that records this attempt,
                # so it exists if and only if the new lease does (as for a single native task)
                message = self.core.scheduler.native_message(
                    job["id"], retry["task_id"], retry["task_type"], retry["params"]
                )
            else:
                entry = QueueEntry(
                    retry["task_type"],
                    retry["task_id"],
                    job["id"],
                    retry["priority"],
                    retry["timeout"],
                    retry["requirements"],
                )
                retry["member"], retry["queue"] = entry.member, entry.queue
        verdict, done, parked = self.storage.record_branch(
            job["id"], branch_id, task_id, worker_id, answer, final, retry, entry, lease, message
        )
        if verdict != "ok":
            return None
        self._emit(job, record, branch_id, worker_id, result, answer, final)
        if retry is not None:
            if lease is None:
                self.core.dispatcher.wake_for(retry["task_type"], retry["requirements"], retry["strategy"])
            elif message is None:  # no broker (embedded): sent after the commit
                self.core.scheduler.run_native_task(job["id"], retry["task_id"], retry["task_type"], retry["params"])
            return BRANCH_ACCEPTED
        self.complete(job["id"], branch_id, final, parked)  # type: ignore[arg-type]
        wait = wait_of(job, "branches") or {}
        if not self.core.scheduler.chords and done >= int(wait.get("total", 0)):
            self.aggregate(job["id"], str(wait.get("group_id")))
        return BRANCH_ACCEPTED

    def _emit(
        self,
        job: Job,
        record: dict[str, Any],
        branch_id: str,
        worker_id: str,
        result: dict[str, Any],
        answer: str,
        final: dict[str, Any] | None,
    ) -> None:
        """Stream events of a recorded branch attempt (between the job's commits: they carry its last `seq`)."""
        if not self.core.stream.wants(TASK_FINISHED) or "seq" not in job:  # no listener, or the job is gone
            return
        timed_out = answer != BRANCH_ACCEPTED
        state = job["current_state"]
        pending: list[Pending] = attempt_events(
            record, state, worker_id, result, timed_out=timed_out, retried=final is None
        )
        if final is not None:
            done = {"branch_id": branch_id, "task_type": record["task_type"], "status": final["status"]}
            pending.append((BRANCH_FINISHED, {"state": state, "task_id": record["task_id"], "details": done}))
        self.core.stream.emit([job_event(job, kind, **fields) for kind, fields in pending])

    def complete(self, job_id: str, branch_id: str, outcome: dict[str, Any], parked: str) -> None:
        """Complete the branch's parked chord member, whose context this caller took from storage."""
        if parked:
            self.core.scheduler.complete_branch(branch_id, outcome, parked)

    def park(self, job_id: str, branch_id: str, context: str) -> dict[str, Any] | None:
        """A chord member parks itself; returns the branch's outcome instead when it is already known."""
        return self.storage.park_branch(job_id, branch_id, context)

    def aggregate(self, job_id: str, group_id: str) -> bool:
        """The fan-in: once every branch has its outcome, run the aggregator state with all of them in
        `aggregation_results` (branch id -> outcome). A compare-and-set: it happens once per fan-out."""
        for _ in range(ATTEMPTS):
            found = self.core.load_waiting(job_id, "branches", JobStatus.WAITING_FOR_PARALLEL_TASKS, group_id=group_id)
            if found is None:
                return False
            job, wait = found
            results = self.storage.branch_results(job_id)
            if len(results) < int(wait["total"]):
                return False
            job["aggregation_results"] = results
            if self.core.move_on(job, wait["aggregate_into"], "fan-in"):
                self.storage.drop_branches(job_id)
                return True
        return False

    def sweep(self, job: Job) -> int:
        """The backstop: complete parked members whose outcome is known, run a fan-in that never fired."""
        wait = wait_of(job, "branches")
        if wait is None:
            return 0
        results = self.storage.branch_results(job["id"])
        for branch_id, context in self.storage.parked_branches(job["id"]).items():
            if branch_id in results:  # parked after its outcome was recorded: complete it now
                self.storage.unpark_branch(job["id"], branch_id)
                self.complete(job["id"], branch_id, results[branch_id], context)
        if len(results) >= int(wait["total"]) and self.aggregate(job["id"], str(wait["group_id"])):
            logger.warning("job %s: the sweep ran a fan-in that had not fired", job["id"])
            return 1
        return 0

    def release_ops(self, job: Job, answer: str) -> list[Any]:
        """Operations that take every unfinished branch away from its queue or from the worker holding it
        (the job is cancelled or timed out)."""
        ops: list[Any] = []
        done = self.storage.branch_results(job["id"])
        running = [r for b, r in self.storage.branch_records(job["id"]).items() if b not in done]
        leases = self.storage.get_leases([r["task_id"] for r in running])  # one round trip, not one per branch
        for record, lease in zip(running, leases, strict=True):
            if lease is not None:
                ops.append(EndLease(record["task_id"], answer))
                if lease.worker_id != NATIVE_WORKER:
                    ops.append(NotifyCancel(lease.worker_id, record["task_id"], job["id"]))
            elif record.get("member"):
                ops.append(Withdraw(record["queue"], record["member"]))
        return ops
