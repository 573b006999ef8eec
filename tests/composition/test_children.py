"""Child jobs over real HTTP in both modes: `blueprints/children.py` (release -> build -> test_suite)."""

from __future__ import annotations

import time

import pytest

from tests.apps import suite_app
from tests.services import wait_until


def view(orchestrator, job_id: str) -> dict:
    with orchestrator.client() as http:
        return http.get(f"/api/v1/jobs/{job_id}").json()


def child_of(orchestrator, job_id: str) -> str:
    return wait_until(lambda: view(orchestrator, job_id).get("child_job_id"), 20, what=f"a child of {job_id}")


def results_of(parent: dict) -> dict:
    (result,) = parent["state_history"]["sub_job_results"].values()
    return result


def test_three_levels_finish(orchestrator):
    release_id = orchestrator.create("/api/v1/jobs/release", {"version": "1.2"})
    done = orchestrator.wait(release_id)
    assert (done["status"], done["current_state"], done["state_history"]["published"]) == ("finished", "publish", True)
    build = results_of(done)
    assert (build["status"], build["final_state"], build["error_message"]) == ("finished", "finished", None)
    tests = next(iter(build["state_history"]["sub_job_results"].values()))
    assert tests["state_history"]["tests"] == "green" and tests["status"] == "finished"
    build_id = next(iter(done["state_history"]["sub_job_results"]))
    child = view(orchestrator, build_id)  # the child belongs to the parent's client
    assert child["parent_job_id"] == release_id and child["blueprint_name"] == "build"
    with orchestrator.client(suite_app.CLIENT_B) as other:
        assert other.get(f"/api/v1/jobs/{build_id}").status_code == 404


@pytest.mark.parametrize(("outcome", "status"), [("red", "failed"), ("crash", "quarantined")])
def test_a_failing_grandchild_rolls_the_release_back(orchestrator, outcome, status):
    release_id = orchestrator.create("/api/v1/jobs/release", {"outcome": outcome})
    done = orchestrator.wait(release_id, timeout=60)
    assert (done["status"], done["current_state"]) == ("finished", "rolled_back")
    build = results_of(done)
    assert build["status"] == "failed"  # the build has a failure transition to its reserved `failed` state
    tests = next(iter(build["state_history"]["sub_job_results"].values()))
    assert tests["status"] == status and (status != "quarantined" or "crashed" in tests["error_message"])


def test_a_cancelled_child_resumes_the_parent_on_failure(orchestrator):
    release_id = orchestrator.create("/api/v1/jobs/release", {"outcome": "review"})
    build_id = child_of(orchestrator, release_id)
    tests_id = child_of(orchestrator, build_id)
    with orchestrator.client() as http:
        assert http.post(f"/api/v1/jobs/{build_id}/cancel").status_code == 200
    done = orchestrator.wait(release_id)
    assert done["current_state"] == "rolled_back" and results_of(done)["status"] == "cancelled"
    assert orchestrator.wait(tests_id)["status"] == "cancelled"  # cancelling the build cancelled its child
    assert "sub_job_results" not in view(orchestrator, build_id)["state_history"]


def test_cancelling_the_parent_cancels_every_descendant(orchestrator):
    release_id = orchestrator.create("/api/v1/jobs/release", {"outcome": "review"})
    build_id = child_of(orchestrator, release_id)
    tests_id = child_of(orchestrator, build_id)
    wait_until(lambda: view(orchestrator, tests_id)["status"] == "waiting_for_human", 20)
    with orchestrator.client() as http:
        assert http.post(f"/api/v1/jobs/{release_id}/cancel").status_code == 200
    for job_id in (release_id, build_id, tests_id):
        assert orchestrator.wait(job_id)["status"] == "cancelled", job_id


def test_a_timed_out_grandchild_fails_up_the_chain(orchestrator, engine):
    release_id = orchestrator.create("/api/v1/jobs/release", {"outcome": "slow_review"})
    build_id = child_of(orchestrator, release_id)
    tests_id = child_of(orchestrator, build_id)
    wait_until(lambda: view(orchestrator, tests_id)["status"] == "waiting_for_human", 20)
    engine.events.sweep_due_jobs(now=time.time() + 2)
    assert orchestrator.wait(tests_id)["status"] == "failed"
    done = orchestrator.wait(release_id)
    assert done["current_state"] == "rolled_back" and results_of(done)["status"] == "failed"


def test_the_sweep_resumes_a_parent_whose_resume_was_lost(orchestrator, engine):
    """A crash between the child's last commit and the parent's resume: the sweep resumes the parent."""
    release_id = orchestrator.create("/api/v1/jobs/release", {"outcome": "review"})
    build_id = child_of(orchestrator, release_id)
    storage = engine.storage
    build = storage.get_job(build_id)
    # end the build behind the core's back (no resume), as if the process died right after this commit
    build["status"], build["error_message"] = "failed", "lost"
    assert storage.commit_job(build, build["seq"])
    assert view(orchestrator, release_id)["status"] == "waiting_for_sub_job"
    engine.events.sweep_due_jobs(now=time.time() + engine.config.STEP_STALL_SECONDS + 1)
    done = orchestrator.wait(release_id)
    assert done["current_state"] == "rolled_back" and results_of(done)["error_message"] == "lost"
