"""Client routes: create a job (one route per blueprint), read a job, cancel a job."""

from __future__ import annotations

from typing import Any

from flask import current_app, request
from flask.views import MethodView
from werkzeug.routing import BaseConverter

from avtomatika.blueprint import StateMachineBlueprint
from avtomatika.engine import OrchestratorEngine
from avtomatika.job import JobStatus, job_view

from ..auth import current_client
from ..errors import abort_json
from ..schemas import Accepted, CreateJob, JobQuery, JobView, StatusAnswer
from ..smorest import Blueprint

blp = Blueprint("jobs", __name__, description="Jobs of the calling client (X-Avtomatika-Token)")

MAX_IDEMPOTENCY_KEY = 200


class JobIdConverter(BaseConverter):
    """`<job_id:...>`: a job id is a lowercase UUID, so `POST /api/v1/jobs/order` (a mistyped create route)
    matches no route and answers 404 instead of being captured as a job id (405)."""

    regex = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def job_id_param(_converter: Any) -> dict[str, str]:
    """The OpenAPI schema of a `job_id` path parameter."""
    return {"type": "string", "format": "uuid"}


def engine() -> OrchestratorEngine:
    """The engine this app serves."""
    found: OrchestratorEngine = current_app.extensions["avtomatika.engine"]
    return found


def create_job_for(blueprint: StateMachineBlueprint, body: dict[str, Any]) -> Any:
    """Handle `POST` on a blueprint's create route (`body` is a loaded `CreateJob`)."""
    if not request.get_data(cache=True).strip():
        abort_json(400, "request body must be JSON: the job's initial_data (an object)")
    key = request.headers.get("Idempotency-Key") or body.pop("idempotency_key", None)
    body.pop("idempotency_key", None)
    if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY):
        abort_json(400, f"Idempotency-Key must have 1 to {MAX_IDEMPOTENCY_KEY} characters")
    initial_data = body.pop("initial_data")
    job_id, _created = engine().core.create_job(
        blueprint.name, initial_data, current_client().public(), idempotency_key=key, **body
    )
    return {"status": "accepted", "job_id": job_id}


def create_routes(blueprints: dict[str, StateMachineBlueprint]) -> list[Blueprint]:
    """One flask-smorest blueprint per registered blueprint with an endpoint: its create route, documented
    under its own name."""
    found = []
    for bp in blueprints.values():
        if bp.route is None:
            continue
        create = Blueprint(f"create_{bp.name}", __name__, description=f"Create jobs of blueprint `{bp.name}`")

        def post(self: MethodView, body: dict[str, Any], _bp: StateMachineBlueprint = bp) -> Any:
            return create_job_for(_bp, body)

        post.__doc__ = (
            f"Create a `{bp.name}` job.\n\nThe body is the job's `initial_data` (the original's form), or an "
            "envelope `{initial_data, webhook_url, dispatch_timeout, result_timeout, idempotency_key}`."
        )
        documented = create.doc(operationId=f"create_{bp.name}")(
            create.arguments(CreateJob, example={"video": "cat.mp4"})(
                create.response(202, Accepted)(create.errors(400, 401, 413, 429)(post))
            )
        )
        view = type(f"Create_{bp.name}", (MethodView,), {"post": documented})
        create.route(bp.route, endpoint=f"create_{bp.name}")(view)
        found.append(create)
    return found


def load_visible_job(job_id: str) -> dict[str, Any]:
    """The job if the caller may see it (owner or admin); 404 otherwise, so ids of others do not leak."""
    job = engine().core.get_job(job_id)
    client = current_client()
    if job is None or (job.get("client_id") != client.client_id and not client.is_admin):
        abort_json(404, "job not found", {"job_id": job_id})
    return job


@blp.route("/jobs/<job_id:job_id>")
class Job(MethodView):
    @blp.arguments(JobQuery, location="query")
    @blp.response(200, JobView)
    @blp.errors(401, 404, 429)
    def get(self, query: dict[str, Any], job_id: str) -> Any:
        """The job: status, state, data, errors, timestamps (never tokens or headers).

        With `?wait=N` the answer waits up to N seconds for the job to reach a terminal status (a long-poll
        instead of polling); it answers at once when the job has already ended.
        """
        wait = query["wait"]
        job = load_visible_job(job_id)
        if wait and not JobStatus(job["status"]).is_terminal:
            engine().storage.wait_for_job_end(job["id"], wait)
            job = engine().core.get_job(job["id"]) or job
        task = job.get("task") or {}
        lease = engine().storage.get_lease(task["task_id"]) if task.get("task_id") else None
        return job_view(job, lease.worker_id if lease else None)


@blp.route("/jobs/<job_id:job_id>/cancel")
class CancelJob(MethodView):
    @blp.response(200, StatusAnswer)
    @blp.errors(401, 404, 409, 429)
    def post(self, job_id: str) -> Any:
        """Cancel a non-terminal job (owner or admin).

        Answers `cancellation_request_sent` when the worker holding its task was told over its WebSocket,
        else `cancellation_request_accepted`; 409 when the job is already terminal, 404 when unknown.
        """
        load_visible_job(job_id)
        status, answer = engine().events.cancel_job(job_id)
        if status != 200:
            abort_json(status, answer["error"], answer.get("details"))
        return answer
