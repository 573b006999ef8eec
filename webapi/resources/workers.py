"""The HTTP worker protocol (SPEC §4): register, heartbeat, long-poll for tasks, results, WebSocket."""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from typing import Any

from flask import Response, current_app
from flask.views import MethodView
from flask_sock import Sock

from avtomatika.job import JobStatus

from ..errors import abort_json
from ..schemas import Heartbeat, HeartbeatAnswer, Register, ResultBody, StatusAnswer, TaskPayload
from ..smorest import Blueprint
from ..worker_auth import authenticated_worker
from .jobs import engine

logger = logging.getLogger(__name__)

blp = Blueprint("workers", __name__, url_prefix="/_worker", description="Worker protocol (X-Worker-Token)")
WORKER_SECURITY = [{"worker": []}]


def worker_record(body: dict[str, Any], existing: dict[str, Any], now: float) -> dict[str, Any]:
    """The stored record of a registration: the fields of `Register`, with the original's aliases applied.

    A top-level `max_concurrent_tasks` (SDK 1.0b3) counts when `resources` has none; the deprecated `cost`
    counts when `cost_per_second` is absent. `reputation` is the server's (kept across re-registration).
    """
    record = {k: v for k, v in body.items() if k != "cost"}
    resources = dict(record.get("resources") or {})
    if resources.get("max_concurrent_tasks") is None and body.get("max_concurrent_tasks") is not None:
        resources["max_concurrent_tasks"] = body["max_concurrent_tasks"]
    record["resources"] = resources
    record["cost_per_second"] = float(body.get("cost_per_second", body.get("cost", 0.0)))
    record.update(
        status=body.get("status", "idle"),
        load=float(body.get("load", 0.0)),
        reputation=float(existing.get("reputation", 1.0)),
        registered_at=existing.get("registered_at", now),
        last_seen=now,
    )
    return record


@blp.route("/workers/register")
class RegisterWorker(MethodView):
    @blp.doc(security=WORKER_SECURITY)
    @blp.arguments(Register)
    @blp.response(200, StatusAnswer)
    @blp.errors(401, 403, 413, 429)
    def post(self, body: dict[str, Any]) -> Any:
        """Register (or re-register) a worker: its task types, resources, models, costs and hot cache.

        Unknown fields are ignored; `reputation` and `dynamic_token` sent by a worker are ignored too.
        """
        current = engine()
        now = time.time()
        existing = current.storage.get_workers([body["worker_id"]])[0] or {}
        current.storage.save_worker(worker_record(body, existing, now), current.events.core.dispatcher.worker_ttl, now)
        return {"status": "registered"}


@blp.route("/workers/<worker_id>")
class WorkerHeartbeat(MethodView):
    @blp.doc(security=WORKER_SECURITY)
    @blp.arguments(Heartbeat, required=False)
    @blp.response(200, HeartbeatAnswer)
    @blp.errors(401, 403, 404, 413, 429)
    def patch(self, updates: dict[str, Any], worker_id: str) -> Any:
        """Heartbeat: refresh the TTL; a body updates `status`, `load`, `supported_tasks`, `hot_cache`, ...

        Answers `{"status": "ttl_refreshed"}` for an empty body, else the updated worker record; plus
        `cancel_tasks` when tasks held by this worker were cancelled.
        """
        record, cancels = engine().events.core.dispatcher.heartbeat(worker_id, updates or None)
        if record is None:
            abort_json(404, "unknown worker: register first", {"worker_id": worker_id})
        answer: dict[str, Any] = dict(record) if updates else {"status": "ttl_refreshed"}
        if cancels:
            answer["cancel_tasks"] = cancels
        return answer


@blp.route("/workers/<worker_id>/tasks/next")
class NextTask(MethodView):
    @blp.doc(security=WORKER_SECURITY)
    @blp.response(200, TaskPayload)
    @blp.alt_response(204, description="No task within the poll timeout")
    @blp.errors(401, 403, 404, 429)
    def get(self, worker_id: str) -> Any:
        """Long-poll for a task: 200 with the task, or 204 after `WORKER_POLL_TIMEOUT_SECONDS`."""
        current = engine()
        storage, dispatcher = current.storage, current.events.core.dispatcher
        worker = storage.get_workers([worker_id])[0]
        if worker is None:
            abort_json(404, "unknown worker: register first", {"worker_id": worker_id})
        types = list(worker.get("supported_tasks") or [])
        poll = f"{worker_id}|{uuid.uuid4().hex[:12]}"
        deadline = time.time() + current.config.WORKER_POLL_TIMEOUT_SECONDS
        registered = False
        try:
            while True:
                # Claims a task, or else registers this poll as waiting, in one atomic step: a task
                # dispatched right after wakes it.
                claim = dispatcher.claim(worker, poll, deadline)
                if claim is not None:
                    registered = False  # the claim removed the registration
                    payload = _task_payload(claim)
                    if payload is not None:
                        if claim.remaining:
                            dispatcher.wake_for(claim.task_type, None, "default", exclude=worker_id)
                        return payload
                    continue
                registered = True
                remaining = deadline - time.time()
                if remaining <= 0:
                    return Response(status=204)
                if storage.wait_for_wake(poll, remaining):
                    worker = storage.get_workers([worker_id])[0] or worker
                    now_types = list(worker.get("supported_tasks") or [])
                    if now_types != types:  # a heartbeat changed the task types: poll for the new ones
                        storage.set_poller(poll, types, None)
                        types = now_types
        finally:
            if registered:
                storage.set_poller(poll, types, None)


def _task_payload(claim: Any) -> dict[str, Any] | None:
    """The task a claim handed out, or None when its job moved on meanwhile (the lease is then dropped)."""
    storage = engine().storage
    job = claim.job
    task = (job or {}).get("task") or {}
    if job is None or task.get("task_id") != claim.task_id or job["status"] != JobStatus.WAITING_FOR_WORKER.value:
        storage.drop_lease(claim.task_id)
        return None
    return {
        "job_id": claim.job_id,
        "task_id": claim.task_id,
        "type": claim.task_type,
        "params": task.get("params") or {},
        "priority": task.get("priority", 0.0),
        "deadline": claim.deadline,
        "attempt": task.get("attempt", 1),
        "tracing_context": job.get("tracing_context") or {},
    }


@blp.route("/tasks/result")
class TaskResult(MethodView):
    @blp.doc(security=WORKER_SECURITY)
    @blp.arguments(ResultBody)
    @blp.response(200, StatusAnswer)
    @blp.errors(401, 403, 404, 409, 413, 429)
    def post(self, body: dict[str, Any]) -> Any:
        """Report a task's result; 409 for a stale or foreign result (it changes nothing)."""
        result = {k: v for k, v in body["result"].items() if v is not None}
        status, answer = engine().events.accept_result(body["job_id"], body["task_id"], body["worker_id"], result)
        if status != 200:
            abort_json(status, answer["error"], answer.get("details"))
        return answer


def register_websocket(app: Any) -> None:
    """`GET /_worker/ws/<worker_id>` (and `/_worker/ws`, identified by the worker's own token, as SDK 1.0b3
    connects): cancel commands pushed to the worker, progress events from it. Authenticated in
    `worker_auth.authenticate_worker_request` like every worker route."""
    sock = Sock(app)

    @sock.route("/_worker/ws/<worker_id>", endpoint="worker_socket")
    def worker_socket(ws: Any, worker_id: str) -> None:
        _serve_socket(ws, worker_id)

    @sock.route("/_worker/ws", endpoint="worker_socket_by_token")
    def worker_socket_by_token(ws: Any) -> None:
        _serve_socket(ws, authenticated_worker())


def _serve_socket(ws: Any, worker_id: str) -> None:
    current = engine()
    storage = current.storage
    try:
        while ws.connected:
            storage.set_ws_connected(worker_id, 5.0)
            for command in storage.pop_commands(worker_id, 0.5):
                ws.send(current_app.json.dumps(command))
            message = ws.receive(timeout=0)
            while message is not None:
                _progress(current, worker_id, message)
                message = ws.receive(timeout=0)
    finally:
        storage.set_ws_connected(worker_id, None)


def _progress(current: Any, worker_id: str, message: Any) -> None:
    """Store a `progress_update` event (named by `event`, or by `type` as SDK 1.0b3 sends it)."""
    try:
        event = json.loads(message)
    except (TypeError, ValueError):
        return
    if not isinstance(event, dict) or "progress_update" not in (event.get("event"), event.get("type")):
        return
    progress = event.get("progress")
    if isinstance(progress, bool) or not isinstance(progress, int | float) or not math.isfinite(progress):
        progress = None
    task_id = event.get("task_id")
    job_id = event.get("job_id") or ""
    if not isinstance(task_id, str) or not isinstance(job_id, str):
        return
    if not job_id:
        lease = current.storage.get_lease(task_id)
        job_id = lease.job_id if lease else ""
    if job_id:
        text = str(event.get("message") or "")[:1000].encode("utf-8", "replace").decode("utf-8")
        current.events.record_progress(job_id, task_id, worker_id, progress, text)
