"""Native task types (worker-protocol.md "Native task types"): an async function with every optional
argument, each kind of outcome, retries of unexpected exceptions, and a cancel while the function runs.
Both modes: embedded (in-process Celery) and Redis (a Celery worker process)."""

from __future__ import annotations

import time

import pytest

from tests.apps import suite_app
from tests.services import wait_until


def _run(orchestrator, **initial):
    return orchestrator.wait(orchestrator.create("/api/v1/jobs/native_edges", initial), timeout=60)


def test_an_async_native_function_gets_job_id_task_id_and_attempt(orchestrator):
    job_id = orchestrator.create("/api/v1/jobs/native_edges", {"mode": "ids"})
    view = orchestrator.wait(job_id, timeout=60)
    assert view["status"] == "finished", view
    history = view["state_history"]
    assert history["job_id"] == job_id and history["attempt"] == 1 and len(history["task_id"]) == 36


@pytest.mark.parametrize(
    ("mode", "status", "history", "error"),
    [
        ("custom", "finished", {"score": 0.4, "reviewed": True}, None),
        ("plain_failure", "finished", {"score": 0.1, "handled": True}, None),
        ("permanent", "quarantined", None, "failed with PERMANENT_ERROR: corrupt input"),
        ("transient", "quarantined", None, "busy on attempt 4 (quarantined after 3 retries)"),
    ],
)
def test_native_outcomes_follow_the_outcome_table(orchestrator, mode, status, history, error):
    view = _run(orchestrator, mode=mode)
    assert view["status"] == status, view
    if history is not None:
        assert {k: view["state_history"][k] for k in history} == history
    if error is not None:
        assert error in view["error_message"]


def test_an_unexpected_exception_is_a_transient_error_and_retried(orchestrator, tmp_path):
    log = tmp_path / "attempts.log"
    view = _run(orchestrator, mode="crash_once", log=str(log))
    assert view["status"] == "finished", view
    assert view["state_history"]["attempt"] == 2
    task_ids, attempts = zip(*(line.split() for line in log.read_text().splitlines()), strict=True)
    assert attempts == ("1", "2") and task_ids[0] != task_ids[1]  # each attempt has its own task id


def test_cancel_while_a_native_function_runs_ignores_its_result(orchestrator, tmp_path):
    log = tmp_path / "runs.log"
    job_id = orchestrator.create("/api/v1/jobs/native_edges", {"mode": "sleep", "seconds": 1.5, "log": str(log)})
    wait_until(log.exists, 30, what="the native function to start")
    with orchestrator.client(suite_app.CLIENT_A) as http:
        assert http.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 200
    cancelled = orchestrator.wait(job_id)
    assert cancelled["status"] == "cancelled"
    time.sleep(3)  # the function ends 1.5 s after it started; its result must change nothing
    assert orchestrator.wait(job_id) == cancelled
