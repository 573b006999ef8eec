"""The HTTP worker protocol (SPEC §4): register, heartbeat, long-poll for tasks, results, WebSocket."""

from __future__ import annotations

import json
import logging
import math
from http import HTTPStatus
from typing import Any

from flask import Response, current_app
from flask.views import MethodView
from flask_sock import Sock

from ..caps import open_requests
from ..current import config, service
from ..errors import ApiError
from ..ratelimit import rate_limits
from ..schemas import Heartbeat, HeartbeatAnswer, Register, ResultBody, StatusAnswer, TaskPayload
from ..smorest import Blueprint
from ..worker_auth import authenticated_worker

logger = logging.getLogger(__name__)

blp = Blueprint("workers", __name__, url_prefix="/_worker", description="Worker protocol (X-Worker-Token)")
WORKER_SECURITY = [{"worker": []}]


def worker_record(body: dict[str, Any]) -> dict[str, Any]:
    """The stored record of a registration: the fields of `Register`, with the original's aliases applied.

    A top-level `max_concurrent_tasks` (SDK 1.0b3) counts when `resources` has none; the deprecated `cost`
    counts when `cost_per_second` is absent.
    """
    record = {k: v for k, v in body.items() if k != "cost"}
    resources = dict(record.get("resources") or {})
    if resources.get("max_concurrent_tasks") is None and body.get("max_concurrent_tasks") is not None:
        resources["max_concurrent_tasks"] = body["max_concurrent_tasks"]
    record["resources"] = resources
    record["cost_per_second"] = float(body.get("cost_per_second", body.get("cost", 0.0)))
    record["status"] = body.get("status", "idle")
    record["load"] = float(body.get("load", 0.0))
    return record


@blp.route("/workers/register")
class RegisterWorker(MethodView):
    @blp.doc(security=WORKER_SECURITY)
    @blp.arguments(Register())
    @blp.response(200, StatusAnswer)
    @blp.errors(401, 403, 413, 429)
    def post(self, body: dict[str, Any]) -> Any:
        """Register (or re-register) a worker: its task types, resources, models, costs and hot cache.

        Unknown fields are ignored; `reputation` and `dynamic_token` sent by a worker are ignored too.
        """
        service().register_worker(worker_record(body))
        return {"status": "registered"}


@blp.route("/workers/<worker_id>")
class WorkerHeartbeat(MethodView):
    @blp.doc(security=WORKER_SECURITY)
    @blp.arguments(Heartbeat(), required=False)
    @blp.response(200, HeartbeatAnswer)
    @blp.errors(401, 403, 404, 413, 429)
    def patch(self, updates: dict[str, Any], worker_id: str) -> Any:
        """Heartbeat: refresh the TTL; a body updates `status`, `load`, `supported_tasks`, `hot_cache`, ...

        Answers `{"status": "ttl_refreshed"}` for an empty body, else the updated worker record; plus
        `cancel_tasks` when tasks held by this worker were cancelled.
        """
        record, cancels = service().heartbeat(worker_id, updates or None)
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
        with open_requests().slot("worker", worker_id, config().MAX_OPEN_POLLS_PER_WORKER):
            task = service().next_task(worker_id)
        return task if task is not None else Response(status=HTTPStatus.NO_CONTENT)


@blp.route("/tasks/result")
class TaskResult(MethodView):
    @blp.doc(security=WORKER_SECURITY)
    @blp.arguments(ResultBody())
    @blp.response(200, StatusAnswer)
    @blp.errors(401, 403, 404, 409, 413, 429)
    def post(self, body: dict[str, Any]) -> Any:
        """Report a task's result; 409 for a stale or foreign result (it changes nothing)."""
        result = {k: v for k, v in body["result"].items() if v is not None}
        return {"status": service().accept_result(body["job_id"], body["task_id"], body["worker_id"], result)}


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
    current = service()
    try:
        while ws.connected and not current.stopping:
            for command in current.socket_commands(worker_id, 0.5):
                ws.send(current_app.json.dumps(command))
            message = ws.receive(timeout=0)
            while message is not None:
                _progress(worker_id, message)
                message = ws.receive(timeout=0)
    finally:
        current.socket_closed(worker_id)


def _progress(worker_id: str, message: Any) -> None:
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
    text = str(event.get("message") or "")[:1000].encode("utf-8", "replace").decode("utf-8")
    try:  # each event counts against the worker's rate limit like a request; over it, events are dropped
        rate_limits().hit("worker", worker_id)
    except ApiError:
        logger.debug("progress event of worker %s dropped: over its rate limit", worker_id)
        return
    service().record_progress(job_id, task_id, worker_id, progress, text)
