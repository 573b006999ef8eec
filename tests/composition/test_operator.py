"""Operator actions over real HTTP in both modes (SPEC §7): list quarantined jobs, retry, cancel anywhere."""

from __future__ import annotations

import uuid

from tests.apps import suite_app
from tests.composition.test_approval import waiting


def test_a_quarantined_job_is_listed_then_retried_to_its_end(orchestrator, tmp_path):
    fix = tmp_path / f"fix-{uuid.uuid4().hex[:6]}"
    job_id = orchestrator.create("/api/v1/jobs/fixable", {"fix": str(fix)})
    quarantined = orchestrator.wait(job_id)
    assert quarantined["status"] == "quarantined" and "fix is not deployed" in quarantined["error_message"]
    with orchestrator.client() as http:
        listed = http.get("/api/v1/jobs", params={"status": "quarantined"}).json()
        assert job_id in [j["id"] for j in listed]
        assert all(j["status"] == "quarantined" for j in listed)
        assert job_id in [j["id"] for j in http.get("/api/v1/jobs", params={"blueprint": "fixable"}).json()]
        by_blueprint = http.get("/api/v1/jobs", params={"blueprint": "fixable"}).json()
        assert by_blueprint and all(j["blueprint_name"] == "fixable" for j in by_blueprint)
        counts = http.get("/api/v1/dashboard").json()["jobs"]
        assert counts["quarantined"] >= 1
    with orchestrator.client(suite_app.CLIENT_B) as other:
        assert job_id not in [j["id"] for j in other.get("/api/v1/jobs", params={"status": "quarantined"}).json()]
        assert other.post(f"/api/v1/jobs/{job_id}/retry").status_code == 404
    with orchestrator.client(suite_app.ADMIN) as admin:
        assert job_id in [j["id"] for j in admin.get("/api/v1/jobs", params={"status": "quarantined"}).json()]
    fix.write_text("deployed")
    with orchestrator.client() as http:
        answer = http.post(f"/api/v1/jobs/{job_id}/retry")
        assert answer.status_code == 200 and answer.json() == {"status": "retry_scheduled", "job_id": job_id}
    done = orchestrator.wait(job_id)
    assert (done["status"], done["state_history"]["fixed"], done["error_message"]) == ("finished", True, None)
    with orchestrator.client() as http:
        assert job_id not in [j["id"] for j in http.get("/api/v1/jobs", params={"status": "quarantined"}).json()]
        again = http.post(f"/api/v1/jobs/{job_id}/retry")
        assert again.status_code == 409 and "finished" in again.json()["error"]
        assert http.post(f"/api/v1/jobs/{uuid.uuid4()}/retry").status_code == 404
        assert http.get("/api/v1/jobs", params={"status": "sleeping"}).status_code == 400
        assert http.get("/api/v1/jobs", params={"limit": 0}).status_code == 400


def test_a_failed_job_can_be_retried_too(orchestrator):
    job_id = orchestrator.create("/api/v1/jobs/no_action", {})
    assert orchestrator.wait(job_id)["status"] == "failed"
    with orchestrator.client(suite_app.ADMIN) as admin:
        assert admin.post(f"/api/v1/jobs/{job_id}/retry").status_code == 200
    assert orchestrator.wait(job_id)["status"] == "failed"  # the same handler fails the same way


def test_cancel_works_while_waiting_for_a_human(orchestrator):
    job_id, _ = waiting(orchestrator)
    with orchestrator.client() as http:
        answer = http.post(f"/api/v1/jobs/{job_id}/cancel")
    assert answer.status_code == 200 and answer.json() == {"status": "cancellation_request_accepted"}
    assert orchestrator.wait(job_id)["status"] == "cancelled"
