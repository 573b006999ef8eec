"""Cancellation (SPEC §4): queued tasks are withdrawn, holders are told once, late results change nothing."""

from __future__ import annotations

import json
import uuid

import pytest
from websockets.sync.client import connect

from tests.apps import suite_app
from tests.services import GLOBAL_WORKER_TOKEN, wait_until
from tests.workers.support import is_json_error, queued_job, unique, view, worker, ws_url


def cancel(orchestrator, job_id, token=suite_app.CLIENT_A):
    with orchestrator.client(token) as http:
        return http.post(f"/api/v1/jobs/{job_id}/cancel")


def _held(orchestrator, **initial):
    """A job whose task is held by a worker: (job id, worker, task)."""
    task_type = unique("held")
    w = worker(orchestrator, task_type)
    job_id = queued_job(orchestrator, task_type, **initial)
    task = w.poll_until()
    assert task["job_id"] == job_id
    return job_id, w, task


def test_cancel_queued_task_withdraws_it(orchestrator):
    task_type = unique("queued")
    job_id = queued_job(orchestrator, task_type)
    task_id = view(orchestrator, job_id)["task_id"]
    answer = cancel(orchestrator, job_id)
    assert answer.status_code == 200 and answer.json() == {"status": "cancellation_request_accepted"}
    cancelled = view(orchestrator, job_id)
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"] is not None
    assert not {"task_id", "worker_id"} & set(cancelled)
    w = worker(orchestrator, task_type)
    assert w.poll() is None  # withdrawn: nobody receives it
    # nobody held it, so nobody may report it
    fake = {"job_id": job_id, "task_id": task_id}
    is_json_error(w.result(fake, status="success", data={"x": 1}), 409)
    assert view(orchestrator, job_id) == cancelled


@pytest.mark.parametrize("heartbeat", [None, {"status": "busy", "load": 1.0}], ids=["empty", "status"])
def test_cancel_held_task_tells_the_worker_once_by_heartbeat(orchestrator, heartbeat):
    job_id, w, task = _held(orchestrator)
    answer = cancel(orchestrator, job_id)
    assert answer.status_code == 200 and answer.json() == {"status": "cancellation_request_accepted"}
    cancelled = view(orchestrator, job_id)
    assert cancelled["status"] == "cancelled"

    first = w.heartbeat(heartbeat)
    assert first.status_code == 200 and first.json()["cancel_tasks"] == [task["task_id"]]
    if heartbeat is None:
        assert first.json() == {"status": "ttl_refreshed", "cancel_tasks": [task["task_id"]]}
    else:
        assert first.json()["status"] == "busy" and first.json()["worker_id"] == w.worker_id
    second = w.heartbeat(heartbeat)
    assert second.status_code == 200 and "cancel_tasks" not in second.json()  # exactly once

    late = w.result(task, status="success", data={"late": True})
    assert late.status_code == 200 and late.json() == {"status": "result_accepted_cancelled"}
    failure = w.result(task, status="failure", error={"code": "TRANSIENT_ERROR", "message": "x"})
    assert failure.status_code == 200 and failure.json() == {"status": "result_accepted_cancelled"}
    assert view(orchestrator, job_id) == cancelled
    if heartbeat is None:
        assert w.poll() is None  # no retry was queued either


def test_other_worker_result_for_a_cancelled_task_is_409(orchestrator):
    job_id, w, task = _held(orchestrator)
    assert cancel(orchestrator, job_id).status_code == 200
    cancelled = view(orchestrator, job_id)
    other = worker(orchestrator, unique("other"))
    is_json_error(other.result(task, status="success", data={"evil": True}), 409)
    assert view(orchestrator, job_id) == cancelled


def test_cancel_is_pushed_over_the_websocket_and_progress_is_shown(orchestrator):
    job_id, w, task = _held(orchestrator)
    headers = {"X-Worker-Token": GLOBAL_WORKER_TOKEN}
    with connect(ws_url(orchestrator.base, w.worker_id), additional_headers=headers, open_timeout=10) as ws:
        ws.send(
            json.dumps(
                {"event": "progress_update", "task_id": task["task_id"], "progress": 0.25, "message": "a quarter"}
            )
        )

        def progress():
            return view(orchestrator, job_id).get("progress")

        shown = wait_until(progress, 10, 0.02, what="the progress event in the job view")
        assert (shown["task_id"], shown["progress"], shown["message"]) == (task["task_id"], 0.25, "a quarter")
        # with the job id, as the worker SDK sends it
        ws.send(
            json.dumps(
                {
                    "event": "progress_update",
                    "job_id": job_id,
                    "task_id": task["task_id"],
                    "progress": 0.5,
                    "message": "half",
                }
            )
        )
        wait_until(lambda: (progress() or {}).get("progress") == 0.5, 10, 0.02, what="the second progress event")

        answer = cancel(orchestrator, job_id)
        assert answer.status_code == 200 and answer.json() == {"status": "cancellation_request_sent"}
        pushed = json.loads(ws.recv(timeout=10))
        assert pushed == {"command": "cancel_task", "type": "cancel_task", "task_id": task["task_id"], "job_id": job_id}
    cancelled = view(orchestrator, job_id)
    assert cancelled["status"] == "cancelled"
    # the heartbeat tells it too (once), and the late result is acknowledged without effect
    assert w.heartbeat().json() == {"status": "ttl_refreshed", "cancel_tasks": [task["task_id"]]}
    assert w.heartbeat().json() == {"status": "ttl_refreshed"}
    assert w.result(task, status="success").json() == {"status": "result_accepted_cancelled"}
    assert view(orchestrator, job_id) == cancelled


def test_progress_of_a_task_the_worker_does_not_hold_is_ignored(orchestrator):
    job_id, w, task = _held(orchestrator)
    intruder = worker(orchestrator, unique("intruder"))
    headers = {"X-Worker-Token": GLOBAL_WORKER_TOKEN}
    with connect(ws_url(orchestrator.base, intruder.worker_id), additional_headers=headers, open_timeout=10) as ws:
        event = {"event": "progress_update", "task_id": task["task_id"], "progress": 0.9, "message": "not mine"}
        ws.send(json.dumps(event))
        ws.send(json.dumps({**event, "job_id": job_id}))
        ws.send("not json")
        ws.send(json.dumps({"event": "progress_update", "task_id": 5}))
    # the holder's own event, sent afterwards, is stored: so the intruder's ones were looked at and dropped
    with connect(ws_url(orchestrator.base, w.worker_id), additional_headers=headers, open_timeout=10) as ws:
        ws.send(json.dumps({"event": "progress_update", "task_id": task["task_id"], "progress": 0.1, "message": "ok"}))
        shown = wait_until(lambda: view(orchestrator, job_id).get("progress"), 10, 0.02, what="progress")
    assert (shown["progress"], shown["message"]) == (0.1, "ok")


def test_cancel_terminal_job_is_409(orchestrator):
    job_id, w, task = _held(orchestrator)
    assert w.result(task, status="success").status_code == 200
    finished = orchestrator.wait(job_id)
    assert finished["status"] == "finished"
    body = is_json_error(cancel(orchestrator, job_id), 409)
    assert "finished" in body["error"]
    assert view(orchestrator, job_id) == finished
    # a cancelled job is terminal too
    second = queued_job(orchestrator, unique("twice"))
    assert cancel(orchestrator, second).status_code == 200
    is_json_error(cancel(orchestrator, second), 409)


@pytest.mark.parametrize("job_id", [str(uuid.uuid4()), "not-a-job-id", "x" * 300])
def test_cancel_unknown_job_is_404(orchestrator, job_id):
    is_json_error(cancel(orchestrator, job_id), 404)


def test_cancel_another_clients_job_is_404(orchestrator):
    job_id, w, task = _held(orchestrator)
    before = view(orchestrator, job_id)
    is_json_error(cancel(orchestrator, job_id, token=suite_app.CLIENT_B), 404)
    assert view(orchestrator, job_id) == before
    assert w.heartbeat().json() == {"status": "ttl_refreshed"}  # nobody was told anything
    # an admin may cancel any job
    assert cancel(orchestrator, job_id, token=suite_app.ADMIN).json() == {"status": "cancellation_request_accepted"}
    assert view(orchestrator, job_id)["status"] == "cancelled"


def test_cancel_without_client_token_is_401(orchestrator):
    task_type = unique("anon")
    job_id = queued_job(orchestrator, task_type)
    is_json_error(cancel(orchestrator, job_id, token=None), 401)
    is_json_error(cancel(orchestrator, job_id, token="wrong-token"), 401)
    assert view(orchestrator, job_id)["status"] == "waiting_for_worker"
    assert worker(orchestrator, task_type).poll()["job_id"] == job_id  # still queued


def test_cancel_notice_waits_for_a_websocket_that_connects_later(orchestrator):
    """A held task cancelled while its worker has no socket: the command is kept and pushed on connection."""
    job_id, w, task = _held(orchestrator)
    answer = cancel(orchestrator, job_id)
    assert answer.status_code == 200 and answer.json() == {"status": "cancellation_request_accepted"}
    headers = {"X-Worker-Token": GLOBAL_WORKER_TOKEN}
    with connect(ws_url(orchestrator.base, w.worker_id), additional_headers=headers, open_timeout=10) as ws:
        pushed = json.loads(ws.recv(timeout=10))
    assert pushed == {"command": "cancel_task", "type": "cancel_task", "task_id": task["task_id"], "job_id": job_id}
    assert view(orchestrator, job_id)["status"] == "cancelled"
    again = connect(ws_url(orchestrator.base, w.worker_id), additional_headers=headers, open_timeout=10)
    with again as ws, pytest.raises(TimeoutError):  # delivered once: a second connection gets nothing
        ws.recv(timeout=1.5)


def test_progress_does_not_rewrite_the_job_record(orchestrator):
    """Progress is kept with the lease: the job's record (its `updated_at`, its seq) is not written."""
    job_id, w, task = _held(orchestrator)
    before = view(orchestrator, job_id)
    headers = {"X-Worker-Token": GLOBAL_WORKER_TOKEN}
    with connect(ws_url(orchestrator.base, w.worker_id), additional_headers=headers, open_timeout=10) as ws:
        for n in range(1, 6):
            ws.send(json.dumps({"event": "progress_update", "task_id": task["task_id"], "progress": n / 10}))
        wait_until(lambda: (view(orchestrator, job_id)["progress"] or {}).get("progress") == 0.5, 10, 0.02)
    after = view(orchestrator, job_id)
    assert {k: v for k, v in after.items() if k != "progress"} == {k: v for k, v in before.items() if k != "progress"}
    assert w.result(task, status="success").json() == {"status": "result_accepted_success"}  # no CAS race lost
    assert "progress" not in orchestrator.wait(job_id)  # it ended with the lease
