"""Human approval over real HTTP in both modes: `blueprints/approval.py` (SPEC §4)."""

from __future__ import annotations

import time

import httpx

from tests.apps import suite_app
from tests.services import wait_until


def waiting(orchestrator, path: str = "/api/v1/jobs/moderation", **initial) -> tuple[str, dict]:
    job_id = orchestrator.create(path, {"title": "cat.mp4", **initial})
    with orchestrator.client() as http:
        view = wait_until(
            lambda: (v := http.get(f"/api/v1/jobs/{job_id}").json())["status"] == "waiting_for_human" and v, 20
        )
    return job_id, view


def decide(orchestrator, job_id: str, body, **headers) -> httpx.Response:
    with httpx.Client(base_url=orchestrator.base, headers=headers, timeout=10) as http:
        return http.post(f"/_public/webhooks/approval/{job_id}", json=body)


def test_the_owner_approves(orchestrator):
    job_id, view = waiting(orchestrator)
    assert view["approval"]["decisions"] == ["approve", "reject", "timeout"]
    assert view["approval"]["message"] == "Publish cat.mp4?"
    answer = decide(orchestrator, job_id, {"decision": "approve"}, **{"X-Avtomatika-Token": suite_app.CLIENT_A})
    assert answer.status_code == 200 and answer.json() == {"status": "approval_received", "job_id": job_id}
    done = orchestrator.wait(job_id)
    assert (done["status"], done["current_state"], done["state_history"]["published"]) == ("finished", "publish", True)


def test_the_approval_token_rejects_by_header_and_by_query(orchestrator):
    job_id, view = waiting(orchestrator)
    token = view["approval"]["approval_token"]
    assert decide(orchestrator, job_id, {"decision": "reject"}, **{"X-Approval-Token": token}).status_code == 200
    assert orchestrator.wait(job_id)["state_history"]["published"] is False
    other_id, other = waiting(orchestrator)
    with httpx.Client(base_url=orchestrator.base) as http:
        answer = http.post(
            f"/_public/webhooks/approval/{other_id}",
            params={"token": other["approval"]["approval_token"]},
            json={"decision": "approve"},
        )
    assert answer.status_code == 200
    assert orchestrator.wait(other_id)["state_history"]["published"] is True


def test_bad_decisions_and_credentials_leave_the_job_waiting(orchestrator):
    job_id, view = waiting(orchestrator)
    owner = {"X-Avtomatika-Token": suite_app.CLIENT_A}
    for body in ({"decision": "maybe"}, {}, {"decision": None}, {"decision": 5}):
        answer = decide(orchestrator, job_id, body, **owner)
        assert answer.status_code == 400, (body, answer.text)
        assert set(answer.json()) == {"error", "details"}
    assert decide(orchestrator, job_id, {"decision": "approve"}).status_code == 401
    assert decide(orchestrator, job_id, {"decision": "approve"}, **{"X-Approval-Token": "forged"}).status_code == 401
    assert decide(orchestrator, job_id, {"decision": "approve"}, **{"X-Avtomatika-Token": "nobody"}).status_code == 401
    # another client's token: the job does not exist for it
    other = decide(orchestrator, job_id, {"decision": "approve"}, **{"X-Avtomatika-Token": suite_app.CLIENT_B})
    assert other.status_code == 404
    # a token of another job does not decide this one
    _, second = waiting(orchestrator)
    foreign = {"X-Approval-Token": second["approval"]["approval_token"]}
    assert decide(orchestrator, job_id, {"decision": "approve"}, **foreign).status_code == 401
    # a body that is not even an object: still 401 without credentials
    with httpx.Client(base_url=orchestrator.base) as http:
        assert http.post(f"/_public/webhooks/approval/{job_id}", content=b"[").status_code == 401
    with orchestrator.client() as http:
        assert http.get(f"/api/v1/jobs/{job_id}").json()["status"] == "waiting_for_human"


def test_a_decided_job_answers_409(orchestrator):
    job_id, view = waiting(orchestrator)
    token = {"X-Approval-Token": view["approval"]["approval_token"]}
    assert decide(orchestrator, job_id, {"decision": "approve"}, **token).status_code == 200
    orchestrator.wait(job_id)
    assert decide(orchestrator, job_id, {"decision": "reject"}, **token).status_code == 409
    owner = {"X-Avtomatika-Token": suite_app.CLIENT_A}
    assert decide(orchestrator, job_id, {"decision": "reject"}, **owner).status_code == 409
    assert orchestrator.wait(job_id)["state_history"]["published"] is True


def test_a_timeout_takes_the_timeout_decision_or_fails(orchestrator, engine):
    job_id, view = waiting(orchestrator, timeout_seconds=1)
    strict_id, _ = waiting(orchestrator, "/api/v1/jobs/strict_moderation", timeout_seconds=1)
    deadline = view["approval"]["deadline"]
    assert deadline is not None and deadline - time.time() < 2
    engine.events.sweep_due_jobs(now=deadline + 0.5)
    done = orchestrator.wait(job_id)
    assert (done["status"], done["current_state"]) == ("finished", "rejected")
    assert done["state_history"]["approvals"][0]["cause"] == "approval timeout"
    failed = orchestrator.wait(strict_id)
    assert failed["status"] == "failed" and "approval timeout" in failed["error_message"]
