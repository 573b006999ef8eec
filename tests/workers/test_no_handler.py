"""A job whose state no handler can serve fails at once, without retries, in both modes (Redis: the step runs
in the Celery worker process)."""

from __future__ import annotations

from avtomatika.job import JobStatus, set_status
from tests.services import wait_until
from tests.workers.http_worker import unique


def test_a_state_that_left_the_blueprint_fails_the_job_at_once(orchestrator, engine):
    job_id = orchestrator.create("/api/v1/jobs/tasks", {"task_type": unique("nobody-serves")})
    wait_until(lambda: engine.storage.get_job(job_id)["status"] == "waiting_for_worker", 20, what="the task")
    # A deploy removed the state the job is at: make the stored job run a state no handler serves.
    job = engine.storage.get_job(job_id)
    seq, removed = job["seq"], unique("removed")
    job.update(current_state=removed, wait=None)
    set_status(job, JobStatus.RUNNING)
    assert engine.core.commit(job, seq, next_step=0.0) == "ok"
    view = orchestrator.wait(job_id)
    assert view["status"] == "failed", view
    assert view["retry_count"] == 0
    assert view["error_message"] == f"blueprint 'tasks' has no state {removed!r}"
