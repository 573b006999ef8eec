"""The HTTP worker protocol (SPEC §4): register, heartbeat, long-poll for tasks, results, WebSocket."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from flask import Response, current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import ValidationError

from avtomatika.job import JobStatus

from ..errors import abort_json
from ..payload import json_object
from ..schemas import Heartbeat, Register, ResultBody
from ..worker_auth import authenticate_worker
from .jobs import engine

logger = logging.getLogger(__name__)

blp = Blueprint("workers", __name__, url_prefix="/_worker", description="Worker protocol (X-Worker-Token)")
WORKER_SECURITY = [{"worker": []}]
PUBLIC_WORKER_FIELDS = (
    "worker_id",
    "supported_tasks",
    "resources",
    "installed_models",
    "cost_per_second",
    "hot_cache",
    "capabilities",
    "status",
    "load",
    "reputation",
    "registered_at",
    "last_seen",
)


def _body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}


def _load(schema: Any, body: dict[str, Any]) -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = schema.load(body)
    except ValidationError as exc:
        abort_json(400, "invalid request body", exc.messages)
    return loaded


def public_worker(record: dict[str, Any]) -> dict[str, Any]:
    """A worker record as the API shows it (registration data and status; it holds no secrets)."""
    return {k: record.get(k) for k in PUBLIC_WORKER_FIELDS}


@blp.route("/workers/register")
class RegisterWorker(MethodView):
    @blp.doc(security=WORKER_SECURITY, requestBody=_body("Register"))
    def post(self) -> Any:
        """Register (or re-register) a worker: its task types, resources, models, cost and hot cache."""
        body = _load(Register(), json_object())
        authenticate_worker(body["worker_id"])
        current = engine()
        now = time.time()
        existing = current.storage.get_workers([body["worker_id"]])[0] or {}
        record = {
            **body,
            "status": "idle",
            "load": 0.0,
            "reputation": float(existing.get("reputation", 1.0)),
            "registered_at": existing.get("registered_at", now),
            "last_seen": now,
        }
        current.storage.save_worker(record, current.events.core.dispatcher.worker_ttl, now)
        return {"status": "registered"}


@blp.route("/workers/<worker_id>")
class WorkerHeartbeat(MethodView):
    @blp.doc(security=WORKER_SECURITY, requestBody={**_body("Heartbeat"), "required": False})
    def patch(self, worker_id: str) -> Any:
        """Heartbeat: refresh the TTL; a body `{status, load}` updates them. Carries `cancel_tasks` when any."""
        authenticate_worker(worker_id)
        body = json_object(required=False)
        updates = _load(Heartbeat(), body) if body else None
        current = engine()
        ttl = current.events.core.dispatcher.worker_ttl
        record, cancels = current.storage.heartbeat_worker(worker_id, ttl, time.time(), updates)
        if record is None:
            abort_json(404, "unknown worker: register first", {"worker_id": worker_id})
        answer: dict[str, Any] = public_worker(record) if updates else {"status": "ttl_refreshed"}
        if cancels:
            answer["cancel_tasks"] = cancels
        return answer


@blp.route("/workers/<worker_id>/tasks/next")
class NextTask(MethodView):
    @blp.doc(security=WORKER_SECURITY, responses={"204": {"description": "No task within the poll timeout"}})
    def get(self, worker_id: str) -> Any:
        """Long-poll for a task: 200 with the task, or 204 after `WORKER_POLL_TIMEOUT_SECONDS`."""
        authenticate_worker(worker_id)
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
    @blp.doc(security=WORKER_SECURITY, requestBody=_body("ResultBody"))
    def post(self) -> Any:
        """Report a task's result; 409 for a stale or foreign result (it changes nothing)."""
        body = _load(ResultBody(), json_object())
        authenticate_worker(body["worker_id"])
        result = {k: v for k, v in body["result"].items() if v is not None}
        status, answer = engine().events.accept_result(body["job_id"], body["task_id"], body["worker_id"], result)
        if status != 200:
            abort_json(status, answer["error"], answer.get("details"))
        return answer


def register_websocket(app: Any) -> None:
    """`GET /_worker/ws/<worker_id>`: cancel commands pushed to the worker, progress events from it."""
    from flask_sock import Sock

    sock = Sock(app)

    @app.before_request
    def authenticate_socket() -> None:
        from flask import request

        prefix = "/_worker/ws/"
        if request.path.startswith(prefix):
            authenticate_worker(request.path[len(prefix) :])

    @sock.route("/_worker/ws/<worker_id>")
    def worker_socket(ws: Any, worker_id: str) -> None:
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
    import json

    try:
        event = json.loads(message)
    except (TypeError, ValueError):
        return
    if not isinstance(event, dict) or event.get("event") != "progress_update":
        return
    progress = event.get("progress")
    if isinstance(progress, bool) or not isinstance(progress, int | float):
        progress = None
    task_id = event.get("task_id")
    job_id = event.get("job_id") or ""
    if not isinstance(task_id, str):
        return
    if not job_id:
        lease = current.storage.get_lease(task_id)
        job_id = lease.job_id if lease else ""
    if job_id:
        current.events.record_progress(job_id, task_id, worker_id, progress, str(event.get("message") or "")[:1000])
