"""Client routes: create a job (one route per blueprint) and read a job."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

from flask import current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint

from avtomatika.blueprint import StateMachineBlueprint
from avtomatika.engine import OrchestratorEngine
from avtomatika.job import JobStatus, job_view

from ..auth import current_client
from ..errors import abort_json
from ..payload import json_object

blp = Blueprint("jobs", __name__, description="Jobs of the calling client (X-Avtomatika-Token)")

ENVELOPE_KEYS = frozenset({"initial_data", "webhook_url", "dispatch_timeout", "result_timeout", "idempotency_key"})
MAX_IDEMPOTENCY_KEY = 200
_JOB_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_ACCEPTED = {
    "description": "Job accepted",
    "content": {"application/json": {"example": {"status": "accepted", "job_id": "2f0c…"}}},
}


def engine() -> OrchestratorEngine:
    """The engine this app serves."""
    found: OrchestratorEngine = current_app.extensions["avtomatika.engine"]
    return found


def _timeout(envelope: dict[str, Any], name: str) -> float | None:
    value = envelope.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 10 * 365 * 86400:
        abort_json(400, f"{name} must be a positive number of seconds", {name: value})
    return float(value)


def _parse_create_body(body: dict[str, Any]) -> dict[str, Any]:
    """Split the seed form (the body is `initial_data`) from the envelope form."""
    if "initial_data" not in body or not set(body) <= ENVELOPE_KEYS:
        return {"initial_data": body}
    initial = body["initial_data"]
    if not isinstance(initial, dict):
        abort_json(400, "initial_data must be a JSON object", {"initial_data": type(initial).__name__})
    webhook = body.get("webhook_url")
    if webhook is not None:
        parsed = urlparse(webhook) if isinstance(webhook, str) else None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc or len(webhook) > 2048:
            abort_json(400, "webhook_url must be an http(s) URL", {"webhook_url": str(webhook)[:100]})
    key = body.get("idempotency_key")
    if key is not None and not isinstance(key, str):
        abort_json(400, "idempotency_key must be a string")
    return {
        "initial_data": initial,
        "webhook_url": webhook,
        "dispatch_timeout": _timeout(body, "dispatch_timeout"),
        "result_timeout": _timeout(body, "result_timeout"),
        "idempotency_key": key,
    }


def create_job_for(blueprint: StateMachineBlueprint) -> Any:
    """Handle `POST` on a blueprint's create route."""
    parsed = _parse_create_body(json_object())
    key = request.headers.get("Idempotency-Key") or parsed.pop("idempotency_key", None)
    parsed.pop("idempotency_key", None)
    if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY):
        abort_json(400, f"Idempotency-Key must have 1 to {MAX_IDEMPOTENCY_KEY} characters")
    initial_data = parsed.pop("initial_data")
    job_id, _created = engine().core.create_job(
        blueprint.name, initial_data, current_client().public(), idempotency_key=key, **parsed
    )
    return {"status": "accepted", "job_id": job_id}, 202


def register_create_routes(blueprints: dict[str, StateMachineBlueprint]) -> Blueprint:
    """A flask-smorest blueprint with one documented create route per registered blueprint."""
    create = Blueprint("create", __name__, description="Create jobs: one route per registered blueprint")
    for bp in blueprints.values():
        if bp.route is None:
            continue

        def post(self: MethodView, _bp: StateMachineBlueprint = bp) -> Any:
            return create_job_for(_bp)

        post.__doc__ = (
            f"Create a job of blueprint `{bp.name}`.\n\nThe body is the job's `initial_data` (seed form), or an "
            "envelope `{initial_data, webhook_url, dispatch_timeout, result_timeout, idempotency_key}`."
        )
        view = type(f"Create_{bp.name}", (MethodView,), {"post": post})
        documented = create.doc(
            operationId=f"create_{bp.name}",
            requestBody={
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}, "example": {"key": "value"}}},
            },
            responses={"202": _ACCEPTED},
        )(view.post)  # type: ignore[attr-defined]
        view.post = documented  # type: ignore[attr-defined]
        create.route(bp.route, endpoint=f"create_{bp.name}")(view)
    return create


def load_visible_job(job_id: str) -> dict[str, Any]:
    """The job if the caller may see it (owner or admin); 404 otherwise, so ids of others do not leak."""
    job = engine().core.get_job(job_id) if _JOB_ID.match(job_id) else None
    client = current_client()
    if job is None or (job.get("client_id") != client.client_id and not client.is_admin):
        abort_json(404, "job not found", {"job_id": job_id[:64]})
    return job


MAX_WAIT_SECONDS = 60.0


def _wait_seconds() -> float:
    raw = request.args.get("wait")
    if raw is None:
        return 0.0
    try:
        wait = float(raw)
    except ValueError:
        abort_json(400, f"wait must be a number of seconds up to {MAX_WAIT_SECONDS:g}", {"wait": raw[:20]})
    if not 0 <= wait <= MAX_WAIT_SECONDS:
        abort_json(400, f"wait must be a number of seconds up to {MAX_WAIT_SECONDS:g}", {"wait": raw[:20]})
    return wait


@blp.route("/api/v1/jobs/<job_id>")
class JobView(MethodView):
    @blp.doc(
        parameters=[
            {
                "name": "wait",
                "in": "query",
                "description": "seconds (up to 60) to wait for the job to end before answering",
                "schema": {"type": "number", "minimum": 0, "maximum": MAX_WAIT_SECONDS},
            }
        ]
    )
    def get(self, job_id: str) -> Any:
        """The job: status, state, data, errors, timestamps (never tokens or headers).

        With `?wait=N` the answer waits up to N seconds for the job to reach a terminal status (a long-poll
        instead of polling); it answers at once when the job has already ended.
        """
        wait = _wait_seconds()
        job = load_visible_job(job_id)
        if wait and not JobStatus(job["status"]).is_terminal:
            engine().storage.wait_for_job_end(job["id"], wait)
            job = engine().core.get_job(job["id"]) or job
        task = job.get("task") or {}
        lease = engine().storage.get_lease(task["task_id"]) if task.get("task_id") else None
        return job_view(job, lease.worker_id if lease else None)
