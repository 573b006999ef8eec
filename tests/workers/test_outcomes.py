"""Every row of the result outcome table (SPEC §4), through real HTTP in both modes."""

from __future__ import annotations

import pytest

from tests.workers.http_worker import HttpWorker, unique


@pytest.fixture
def worker(orchestrator):
    task_type = unique("echo")
    w = HttpWorker(orchestrator.base, supported_tasks=[task_type])
    assert w.register().json() == {"status": "registered"}
    w.task_type = task_type
    yield w
    w.close()


def _job_and_task(orchestrator, worker, **initial):
    job_id = orchestrator.create("/api/v1/jobs/tasks", {"task_type": worker.task_type, "text": "hello", **initial})
    task = worker.poll_until()
    assert task["job_id"] == job_id
    return job_id, task


def test_success_merges_data_and_transitions(orchestrator, worker):
    job_id, task = _job_and_task(orchestrator, worker)
    assert task["type"] == worker.task_type and task["params"] == {"text": "hello"} and task["attempt"] == 1
    assert set(task) == {"job_id", "task_id", "type", "params", "priority", "deadline", "attempt", "tracing_context"}
    answer = worker.result(task, status="success", data={"echo": "HELLO"})
    assert answer.status_code == 200 and answer.json() == {"status": "result_accepted_success"}
    view = orchestrator.wait(job_id)
    assert view["status"] == "finished" and view["current_state"] == "done"
    assert view["state_history"] == {"echo": "HELLO", "finished_by": "done"}


def test_missing_status_is_success(orchestrator, worker):
    job_id, task = _job_and_task(orchestrator, worker)
    assert worker.result(task, data={"x": 1}).json() == {"status": "result_accepted_success"}
    assert orchestrator.wait(job_id)["state_history"]["x"] == 1


def test_custom_status_follows_its_transition(orchestrator, worker):
    job_id, task = _job_and_task(orchestrator, worker)
    assert worker.result(task, status="needs_review", data={"why": "blurry"}).json()["status"] == (
        "result_accepted_success"
    )
    view = orchestrator.wait(job_id)
    assert view["status"] == "finished" and view["state_history"]["why"] == "blurry"


def test_failure_without_code_takes_failure_transition(orchestrator, worker):
    job_id, task = _job_and_task(orchestrator, worker)
    answer = worker.result(task, status="failure", data={"partial": 1}, error={"message": "bad frame"})
    assert answer.json() == {"status": "result_accepted_failure"}
    view = orchestrator.wait(job_id)
    assert view["status"] == "failed"  # handle_failure moves to the reserved 'failed' state
    assert view["error_message"] == "state 'handle_failure': transition_to('failed'); the job entered state 'failed'"
    assert view["state_history"]["handled"] is True
    assert view["state_history"]["partial"] == 1
    assert view["state_history"]["error"] == {"message": "bad frame"}


def test_transient_error_is_retried_then_succeeds(orchestrator, worker):
    job_id, task = _job_and_task(orchestrator, worker)
    answer = worker.result(task, status="failure", error={"code": "TRANSIENT_ERROR", "message": "GPU busy"})
    assert answer.json() == {"status": "result_accepted_failure"}
    again = worker.poll_until()
    assert again["job_id"] == job_id and again["attempt"] == 2 and again["task_id"] != task["task_id"]
    # The first attempt's result is stale now.
    assert worker.result(task, status="success").status_code == 200  # a repeat of the accepted one
    assert worker.result(again, status="success", data={"ok": True}).status_code == 200
    view = orchestrator.wait(job_id)
    assert view["status"] == "finished" and view["state_history"]["ok"] is True


def test_transient_errors_exhaust_retries_then_quarantine(orchestrator, worker):
    job_id, task = _job_and_task(orchestrator, worker)
    for attempt in range(1, 5):  # the first attempt plus JOB_MAX_RETRIES (3) retries
        assert task["attempt"] == attempt
        worker.result(task, status="failure", error={"code": "TRANSIENT_ERROR", "message": f"try {attempt}"})
        if attempt < 4:
            task = worker.poll_until()
    view = orchestrator.wait(job_id)
    assert view["status"] == "quarantined"
    assert "try 4" in view["error_message"] and "quarantined after 3 retries" in view["error_message"]


def test_failure_without_code_and_no_failure_transition_is_retried(orchestrator):
    w = HttpWorker(orchestrator.base, supported_tasks=["echo"])
    w.register()
    job_id = orchestrator.create("/api/v1/jobs/no_failure", {})
    task = w.poll_until()
    while task["job_id"] != job_id:  # another test's leftover echo task: finish it
        w.result(task, status="success")
        task = w.poll_until()
    assert w.result(task, status="failure", error={"message": "oops"}).json() == {"status": "result_accepted_failure"}
    again = w.poll_until()
    assert again["job_id"] == job_id and again["attempt"] == 2
    w.result(again, status="success")
    assert orchestrator.wait(job_id)["status"] == "finished"
    w.close()


def test_permanent_error_quarantines_at_once(orchestrator, worker):
    job_id, task = _job_and_task(orchestrator, worker)
    worker.result(task, status="failure", error={"code": "PERMANENT_ERROR", "message": "corrupt file"})
    view = orchestrator.wait(job_id)
    assert view["status"] == "quarantined" and "corrupt file" in view["error_message"]
    assert worker.poll() is None  # no retry


def test_invalid_input_fails_at_once(orchestrator, worker):
    job_id, task = _job_and_task(orchestrator, worker)
    worker.result(task, status="failure", error={"code": "INVALID_INPUT_ERROR", "message": "no such file"})
    view = orchestrator.wait(job_id)
    assert view["status"] == "failed" and "INVALID_INPUT_ERROR" in view["error_message"]


def test_cancelled_status_cancels_the_job(orchestrator, worker):
    job_id, task = _job_and_task(orchestrator, worker)
    assert worker.result(task, status="cancelled").json() == {"status": "result_accepted_cancelled"}
    assert orchestrator.wait(job_id)["status"] == "cancelled"


def _outcome_job(orchestrator, worker, transitions):
    job_id = orchestrator.create("/api/v1/jobs/outcomes", {"task_type": worker.task_type, "transitions": transitions})
    task = worker.poll_until()
    assert task["job_id"] == job_id
    return job_id, task


def test_cancelled_status_with_a_cancelled_transition_goes_there(orchestrator, worker):
    job_id, task = _outcome_job(orchestrator, worker, {"success": "done", "cancelled": "after_cancel"})
    answer = worker.result(task, status="cancelled", data={"kept": 1})
    assert answer.json() == {"status": "result_accepted_cancelled"}
    view = orchestrator.wait(job_id)
    assert view["status"] == "finished" and view["current_state"] == "done"
    assert view["state_history"] == {"kept": 1, "cancel_handled": True, "finished_by": "done"}


def test_success_without_a_success_key_fails_the_job(orchestrator, worker):
    job_id, task = _outcome_job(orchestrator, worker, {"failure": "done"})
    assert worker.result(task, status="success", data={"kept": 2}).json() == {"status": "result_accepted_success"}
    view = orchestrator.wait(job_id)
    assert view["status"] == "failed", view
    assert view["error_message"] == (
        f"task {worker.task_type} ({task['task_id']}) succeeded but its transitions have no 'success' key"
    )
    assert view["state_history"]["kept"] == 2  # data is merged first


def test_an_outcome_leading_to_an_unknown_state_fails_the_job(orchestrator, worker):
    job_id, task = _outcome_job(orchestrator, worker, {"success": "nowhere"})
    assert worker.result(task, status="success").json() == {"status": "result_accepted_success"}
    view = orchestrator.wait(job_id)
    assert view["status"] == "failed" and "leads to unknown state 'nowhere'" in view["error_message"]


def test_unknown_status_fails_the_job_naming_it(orchestrator, worker):
    job_id, task = _job_and_task(orchestrator, worker)
    assert worker.result(task, status="exploded").json() == {"status": "result_accepted_success"}
    view = orchestrator.wait(job_id)
    assert view["status"] == "failed" and "'exploded'" in view["error_message"]


def test_repeated_result_is_200_and_changes_nothing(orchestrator, worker):
    job_id, task = _job_and_task(orchestrator, worker)
    assert worker.result(task, status="success", data={"n": 1}).status_code == 200
    before = orchestrator.wait(job_id)
    again = worker.result(task, status="success", data={"n": 2})
    assert again.status_code == 200 and again.json() == {"status": "result_accepted_success"}
    assert orchestrator.wait(job_id) == before


def test_foreign_result_is_409_and_changes_nothing(orchestrator, worker):
    job_id, task = _job_and_task(orchestrator, worker)
    intruder = HttpWorker(orchestrator.base, supported_tasks=["other"])
    intruder.register()
    answer = intruder.result(task, status="success", data={"evil": True})
    assert answer.status_code == 409 and "stale" in answer.json()["error"]
    with orchestrator.client() as http:
        view = http.get(f"/api/v1/jobs/{job_id}").json()
    assert view["status"] == "waiting_for_worker" and "evil" not in view["state_history"]
    assert view["worker_id"] == worker.worker_id
    intruder.close()


def test_native_task_type_runs_on_celery(orchestrator):
    view = orchestrator.wait(orchestrator.create("/api/v1/jobs/native", {"value": 21}))
    assert view["status"] == "finished", view
    assert view["state_history"] == {"doubled": 42, "attempt": 1}
    failed = orchestrator.wait(orchestrator.create("/api/v1/jobs/native", {"value": -1}))
    assert failed["status"] == "failed" and "must not be negative" in failed["error_message"]
