"""Blueprints run to `finished` through HTTP, in the embedded default and in Redis mode."""

from __future__ import annotations

import logging

import pytest

from tests.apps import suite_app
from tests.services import wait_until


def test_linear_blueprint_finishes(orchestrator):
    job_id = orchestrator.create("/api/v1/jobs/linear", {"value": 21})
    view = orchestrator.wait(job_id)
    assert view["status"] == "finished", view
    assert view["current_state"] == "done"
    assert view["state_history"]["visited"] == ["start", "prepare", "process", "publish", "done"]
    assert view["state_history"]["doubled"] == 42


@pytest.mark.parametrize(
    ("body", "route"),
    [
        ({"type": "urgent"}, ["urgent"]),
        ({"size": 100}, ["big"]),
        ({"size": 99.5}, ["normal"]),
        ({}, ["normal"]),
    ],
)
def test_conditional_blueprint_routes(orchestrator, body, route):
    view = orchestrator.wait(orchestrator.create("/api/v1/jobs/conditional", body))
    assert view["status"] == "finished", view
    assert view["state_history"]["route"] == route


def test_data_store_blueprint(orchestrator):
    view = orchestrator.wait(orchestrator.create("/api/v1/jobs/priced_order", {"item": "apple", "quantity": 3}))
    assert view["status"] == "finished", view
    assert view["state_history"] == {"total": 9, "receipt": "total=9"}


def test_handler_error_is_retried_then_quarantined(orchestrator, caplog):
    caplog.set_level(logging.WARNING, logger="avtomatika.core")
    job_id = orchestrator.create("/api/v1/jobs/flaky", {})
    view = orchestrator.wait(job_id)
    assert view["status"] == "quarantined", view
    assert view["retry_count"] == 4  # the first run plus JOB_MAX_RETRIES (3) retries
    message = view["error_message"]
    assert message == "state 'start': handler raised ValueError: the database is on fire (quarantined after 3 retries)"
    assert "server log" in view["traceback_hint"] and "avtomatika.core" in view["traceback_hint"]
    assert "Traceback" not in str(view)

    def logged() -> str:
        return orchestrator.step_log() if orchestrator.step_log else caplog.text

    wait_until(lambda: f"job {job_id} quarantined" in logged(), 10, what="the quarantine log line")
    log = logged()
    for attempt in (1, 2, 3):
        assert f"job {job_id}: the handler of state 'start' failed (attempt {attempt} of 4)" in log
    assert f"job {job_id} quarantined at state 'start' after 4 attempts; last traceback:" in log
    assert log.count(f"job {job_id} quarantined") == 1  # with the traceback, once
    assert 'raise ValueError("the database is on fire")' in log


def test_handler_without_action_fails_job(orchestrator):
    view = orchestrator.wait(orchestrator.create("/api/v1/jobs/no_action", {}))
    assert view["status"] == "failed"
    assert "set no action" in view["error_message"]


def test_transition_loop_is_stopped(orchestrator):
    view = orchestrator.wait(orchestrator.create("/api/v1/jobs/looping", {}))
    assert view["status"] == "failed"
    assert "MAX_TRANSITIONS_PER_JOB" in view["error_message"]


def test_clients_cannot_read_each_other(orchestrator):
    job_id = orchestrator.create("/api/v1/jobs/linear", {"value": 1}, token=suite_app.CLIENT_A)
    with orchestrator.client(suite_app.CLIENT_B) as http:
        answer = http.get(f"/api/v1/jobs/{job_id}")
    assert answer.status_code == 404
    assert answer.json()["error"] == "job not found"
    with orchestrator.client(suite_app.ADMIN) as http:
        assert http.get(f"/api/v1/jobs/{job_id}").status_code == 200


@pytest.mark.parametrize(
    ("initial", "expected"),
    [
        (
            {"name": "alpha", "count": 4, "ratio": 1.5, "flag": True, "note": None, "seen": "yes", "code": "5"},
            [True, True, True, True, True, False, True, True, True, True, True, False],
        ),
        (
            {"name": "beta", "count": 3, "ratio": 0.5, "flag": False, "seen": "no", "code": 5},
            [False, False, False, True, False, False, False, False, False, False, False, False],
        ),
        (
            {"name": 1, "count": -2, "ratio": "high", "flag": 1, "note": 0, "code": "05"},
            [False, True, False, True, False, True, False, False, False, False, False, False],
        ),
    ],
)
def test_every_operator_and_value_type_through_http(orchestrator, initial, expected):
    """Every operator, every value type (incompatible types and missing fields are False), both orders."""
    view = orchestrator.wait(orchestrator.create("/api/v1/jobs/operators", initial))
    assert view["status"] == "finished", view
    assert view["state_history"]["results"] == expected
