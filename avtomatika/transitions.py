"""Entering a state: the one place a job moves to another blueprint state (steps, results, timeouts, ...).

Whatever caused the move (a handler's `transition_to`, a worker result, later an approval or a child job's
end), the job goes through `enter_state`, which checks the target, counts the transition against
`MAX_TRANSITIONS_PER_JOB` and decides whether the job keeps running or has ended.
"""

from __future__ import annotations

from .blueprint import RESERVED_END_STATES, StateMachineBlueprint
from .config import Config
from .job import Job, JobStatus, set_status


def fail(job: Job, message: str, status: JobStatus = JobStatus.FAILED) -> None:
    """End `job` with `status` (failed by default) and say why."""
    job["error_message"] = message
    set_status(job, status)


def enter_state(job: Job, blueprint: StateMachineBlueprint, target: str, config: Config, *, cause: str) -> bool:
    """Move `job` to `target` and make it runnable; False when the job failed instead.

    `cause` names what asked for the move, for the error message (e.g. "state 'a': transition_to('b')").
    The job fails when `target` is no state of the blueprint or when `MAX_TRANSITIONS_PER_JOB` is reached.
    A reserved end state without a handler (`finished`, `failed`) ends the job here: a step whose only work
    would be to say so is one Celery task less per job.
    """
    if not blueprint.has_state(target):
        fail(job, f"{cause} leads to unknown state {target!r}")
        return False
    if job.get("transitions", 0) >= config.MAX_TRANSITIONS_PER_JOB:
        fail(
            job, f"MAX_TRANSITIONS_PER_JOB ({config.MAX_TRANSITIONS_PER_JOB}) reached at state {job['current_state']!r}"
        )
        return False
    job["current_state"] = target
    job["transitions"] = job.get("transitions", 0) + 1
    job["retry_count"] = 0
    job["wait"] = None
    if job["status"] != JobStatus.RUNNING.value:
        set_status(job, JobStatus.RUNNING)
    if target == "failed":  # a failed job always says why
        job["error_message"] = f"{cause}; the job entered state 'failed'"
    if target in RESERVED_END_STATES and target not in blueprint.states:
        set_status(job, JobStatus.FAILED if target == "failed" else JobStatus.FINISHED)
    return True
