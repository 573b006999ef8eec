"""Client routes: create a job (one route per blueprint), read a job, cancel a job."""

from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView
from werkzeug.routing import BaseConverter

from avtomatika.blueprint import StateMachineBlueprint

from ..auth import current_client
from ..caps import open_requests
from ..current import config, service
from ..errors import bad_request
from ..schemas import Accepted, CreateJob, HistoryEvent, JobListQuery, JobQuery, JobView, StatusAnswer
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


def create_job_for(blueprint: StateMachineBlueprint, body: dict[str, Any]) -> Any:
    """Handle `POST` on a blueprint's create route (`body` is a loaded `CreateJob`)."""
    if not request.get_data(cache=True).strip():
        bad_request("request body must be JSON: the job's initial_data (an object)")
    key = request.headers.get("Idempotency-Key") or body.pop("idempotency_key", None)
    body.pop("idempotency_key", None)
    if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY):
        bad_request(f"Idempotency-Key must have 1 to {MAX_IDEMPOTENCY_KEY} characters")
    initial_data = body.pop("initial_data")
    client = current_client()
    job_id = service().create_job(
        blueprint.name,
        initial_data,
        client.public(),
        idempotency_key=key,
        monthly_attempts=client.monthly_attempts,
        **body,
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
            create.arguments(CreateJob(), example={"video": "cat.mp4"})(
                create.response(202, Accepted)(create.errors(400, 401, 413, 429)(post))
            )
        )
        view = type(f"Create_{bp.name}", (MethodView,), {"post": documented})
        create.route(bp.route, endpoint=f"create_{bp.name}")(view)
        found.append(create)
    return found


@blp.route("/jobs/<job_id:job_id>")
class Job(MethodView):
    @blp.arguments(JobQuery(), location="query")
    @blp.response(200, JobView)
    @blp.errors(401, 404, 429)
    def get(self, query: dict[str, Any], job_id: str) -> Any:
        """The job: status, state, data, errors, timestamps (never tokens or headers).

        With `?wait=N` the answer waits up to N seconds for the job to reach a terminal status (a long-poll
        instead of polling); it answers at once when the job has already ended.
        """
        client = current_client()
        if not query["wait"]:
            return service().job_view(job_id, client)
        with open_requests().slot("client", client.client_id, config().MAX_OPEN_WAITS_PER_CLIENT):
            return service().job_view(job_id, client, query["wait"])


@blp.route("/jobs/<job_id:job_id>/history")
class JobHistory(MethodView):
    @blp.response(200, HistoryEvent(many=True))
    @blp.errors(401, 404, 429, 501, 503)
    def get(self, job_id: str) -> Any:
        """The job's events in order (owner or admin): creation, each state started/finished/failed, tasks
        dispatched/started/finished/retried/timed out, branches, approvals, child jobs and the end.

        501 when history is not enabled; 503 while the history database does not answer.
        """
        return service().job_history(job_id, current_client())


@blp.route("/jobs")
class JobList(MethodView):
    @blp.arguments(JobListQuery(), location="query")
    @blp.response(200, JobView(many=True))
    @blp.errors(400, 401, 429)
    def get(self, query: dict[str, Any]) -> Any:
        """Jobs of the caller (admins: every job), most recently changed first; `?status=quarantined` lists
        the jobs waiting for an operator. Filters: `status`, `blueprint`; paging: `limit` (≤ 1000), `offset`.

        With history enabled the list comes from the history database (each job's id, blueprint, status,
        state, error and timestamps); otherwise from the live job records."""
        return service().list_jobs(current_client(), **query)


@blp.route("/jobs/<job_id:job_id>/retry")
class RetryJob(MethodView):
    @blp.response(200, Accepted)
    @blp.errors(401, 404, 409, 429)
    def post(self, job_id: str) -> Any:
        """Resume a `failed` or `quarantined` job at its current state (owner or admin): its handler runs
        again with fresh retry and transition counters. 409 for any other status."""
        service().retry_job(job_id, current_client())
        return {"status": "retry_scheduled", "job_id": job_id}


@blp.route("/jobs/<job_id:job_id>/cancel")
class CancelJob(MethodView):
    @blp.response(200, StatusAnswer)
    @blp.errors(401, 404, 409, 429)
    def post(self, job_id: str) -> Any:
        """Cancel a non-terminal job (owner or admin).

        Answers `cancellation_request_sent` when the worker holding its task was told over its WebSocket,
        else `cancellation_request_accepted`; 409 when the job is already terminal, 404 when unknown.
        """
        return {"status": service().cancel_job(job_id, current_client())}
