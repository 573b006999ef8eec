"""The original's worker SDK, `avtomatika-worker` 1.0b3 from PyPI, runs real jobs to their end in both modes.

Each test starts real SDK processes (in their own virtualenv) against the suite's orchestrator: embedded,
and Redis mode with gunicorn and a Celery worker. Nothing here was written for this project's protocol: the
SDK registers, heartbeats, polls, reports and listens on its WebSocket exactly as it does for 1.0b4.
"""

from __future__ import annotations

import time
import uuid

import httpx

from tests.apps import suite_app
from tests.services import GLOBAL_WORKER_TOKEN, wait_until

WS_WORKER, WS_TOKEN = "sdk-ws-1", "sdk-ws-1-secret"  # tests/apps/workers.toml


def listed(orchestrator, worker_id: str) -> dict | None:
    with orchestrator.client(suite_app.ADMIN) as http:
        answer = http.get("/api/v1/workers")
    assert answer.status_code == 200, answer.text
    assert isinstance(answer.json(), list)  # a JSON list, as the original answers
    return next((w for w in answer.json() if w["worker_id"] == worker_id), None)


def job(orchestrator, task_type: str, mode: str, **extra) -> str:
    return orchestrator.create("/api/v1/jobs/tasks", {"task_type": task_type, "text": mode, **extra})


def start(orchestrator, sdk_workers, worker_id: str | None = None, token: str = GLOBAL_WORKER_TOKEN, **env):
    task_type = f"compat-{uuid.uuid4().hex[:8]}"
    worker_id = worker_id or f"sdk-{uuid.uuid4().hex[:8]}"
    worker = sdk_workers(orchestrator.base, worker_id, token, TASK_TYPE=task_type, **env)
    wait_until(lambda: listed(orchestrator, worker_id), 20, 0.1, what="the SDK worker's registration")
    return worker, task_type


def test_sdk_registers_and_heartbeats_with_its_own_fields(orchestrator, sdk_workers):
    worker, task_type = start(orchestrator, sdk_workers)
    record = listed(orchestrator, worker.worker_id)
    assert record["supported_tasks"] == [task_type]
    assert record["worker_type"] == "compat-cpu"
    assert record["hostname"] and record["ip_address"]
    assert record["resources"]["cpu_cores"] == 4
    assert record["resources"]["max_concurrent_tasks"] == 10  # sent top-level by the SDK
    # its heartbeats (every second here) carry load, status, supported_tasks and hot_cache
    beat = wait_until(
        lambda: (r := listed(orchestrator, worker.worker_id)) and r["last_seen"] > record["last_seen"] and r,
        10,
        0.1,
        what="a heartbeat",
    )
    assert beat["hot_cache"] == [] and beat["status"] == "idle" and beat["supported_tasks"] == [task_type]
    assert "reputation" in beat and "token" not in str(beat).lower()


OUTCOMES = {
    # mode: (status, what the job view must show)
    "success": ("finished", lambda v: v["state_history"]["echo"] == "success"),
    "needs_review": ("finished", lambda v: v["state_history"]["reason"] == "blurry"),
    "unknown_status": ("failed", lambda v: "weird" in v["error_message"]),
    "failure": ("failed", lambda v: v["state_history"]["handled"] is True),
    "permanent": ("quarantined", lambda v: "PERMANENT_ERROR" in v["error_message"]),
    "invalid": ("failed", lambda v: "INVALID_INPUT_ERROR" in v["error_message"]),
    "raises": ("quarantined", lambda v: "the GPU fell off the bus" in v["error_message"]),
    "flaky_once": ("finished", lambda v: v["state_history"]["recovered"] is True),
}


def test_every_outcome_the_sdk_reports(orchestrator, sdk_workers):
    worker, task_type = start(orchestrator, sdk_workers)
    jobs = {mode: job(orchestrator, task_type, mode) for mode in OUTCOMES}
    for mode, job_id in jobs.items():
        view = orchestrator.wait(job_id, timeout=60)
        status, check = OUTCOMES[mode]
        assert view["status"] == status, (mode, view)
        assert check(view), (mode, view)
    attempts = [e for e in worker.events() if e["job_id"] == jobs["raises"]]
    assert len(attempts) == 4  # the first attempt and JOB_MAX_RETRIES (3) retries, each a new task id
    assert len({e["task_id"] for e in attempts}) == 4


def test_cancel_through_the_websocket(orchestrator, sdk_workers):
    worker, task_type = start(orchestrator, sdk_workers, WS_WORKER, WS_TOKEN, WORKER_ENABLE_WEBSOCKETS="true")
    time.sleep(0.5)  # the SDK opens its WebSocket right after registering
    job_id = job(orchestrator, task_type, "progress_then_sleep", seconds=30)
    started = worker.wait_for(event="started", job_id=job_id)
    with orchestrator.client() as http:
        progress = wait_until(
            lambda: http.get(f"/api/v1/jobs/{job_id}").json().get("progress"), 10, 0.05, what="progress"
        )
        assert progress["progress"] == 0.5 and progress["message"] == "half way"
        answer = http.post(f"/api/v1/jobs/{job_id}/cancel")
    assert answer.status_code == 200 and answer.json() == {"status": "cancellation_request_sent"}
    worker.wait_for(event="cancelled", task_id=started["task_id"])  # the SDK stopped its handler
    assert orchestrator.wait(job_id)["status"] == "cancelled"
    # the slot is free again: the next job runs to its end on the same worker
    assert orchestrator.wait(job(orchestrator, task_type, "success"))["status"] == "finished"
    assert orchestrator.wait(job_id)["status"] == "cancelled"


def test_cancel_through_the_heartbeat(orchestrator, sdk_workers):
    """Without a WebSocket the job is cancelled at once; the SDK's late result is acknowledged and changes
    nothing (1.0b3 does not read `cancel_tasks` from heartbeat answers, so its handler runs to its end)."""
    worker, task_type = start(orchestrator, sdk_workers)
    job_id = job(orchestrator, task_type, "sleep", seconds=2)
    worker.wait_for(event="started", job_id=job_id)
    with orchestrator.client() as http:
        answer = http.post(f"/api/v1/jobs/{job_id}/cancel")
    assert answer.status_code == 200 and answer.json() == {"status": "cancellation_request_accepted"}
    assert orchestrator.wait(job_id)["status"] == "cancelled"
    worker.wait_for(event="finished", job_id=job_id)
    follow_up = orchestrator.wait(job(orchestrator, task_type, "success"))
    assert follow_up["status"] == "finished"
    view = orchestrator.wait(job_id)
    assert view["status"] == "cancelled" and "slept" not in view["state_history"]
    assert "Error sending result" not in worker.process.output()  # its late result got 200, not an error


def test_an_unknown_worker_token_is_refused(orchestrator, sdk_workers):
    worker, _ = sdk_workers(orchestrator.base, "sdk-intruder", "wrong-token", TASK_TYPE="x"), None
    time.sleep(2)
    assert listed(orchestrator, "sdk-intruder") is None
    assert "Error registering" in worker.process.output()
    with httpx.Client(base_url=orchestrator.base) as http:
        assert http.post("/_worker/workers/register", json={}).status_code == 401
