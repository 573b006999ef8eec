"""`POST /_public/webhooks/approval/{job_id}`: a human decision for a job waiting for approval (SPEC §4)."""

from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView

from ..auth import CLIENT_HEADER, registry
from ..current import service
from ..errors import unauthorized
from ..schemas import ApprovalAnswer, ApprovalBody
from ..smorest import Blueprint

blp = Blueprint("approvals", __name__, url_prefix="/_public/webhooks", description="Human decisions")
APPROVAL_HEADER = "X-Approval-Token"
PREFIX = "/_public/webhooks/approval/"


def authorize_decision() -> None:
    """`before_request`: the owner's client token, or the job's approval token (`X-Approval-Token` header or
    `?token=`), checked before the body is looked at."""
    if not request.path.startswith(PREFIX):
        return
    job_id = (request.view_args or {}).get("job_id")
    if job_id is None:
        return  # no route: the 404 handler answers
    header = request.headers.get(CLIENT_HEADER)
    client = registry().authenticate(header) if header else None
    if header and client is None:
        unauthorized("invalid client token")
    token = request.headers.get(APPROVAL_HEADER) or request.args.get("token")
    service().authorize_decision(job_id, client=client, token=token)


@blp.route("/approval/<job_id:job_id>")
class Approval(MethodView):
    @blp.doc(
        security=[{"client": []}, {"approval": []}],
        parameters=[{"name": "token", "in": "query", "schema": {"type": "string"}, "required": False}],
    )
    @blp.arguments(ApprovalBody())
    @blp.response(200, ApprovalAnswer)
    @blp.errors(400, 401, 404, 409)
    def post(self, body: dict[str, Any], job_id: str) -> Any:
        """Decide for a job in `waiting_for_human`: `{"decision": "<key>"}` picks the next state.

        Authorised by the owning client's `X-Avtomatika-Token`, or by the job's approval token
        (`X-Approval-Token` or `?token=`; the owner sees it in the job view, the notifier is given it).
        400 for a missing or unknown decision (the job keeps waiting), 409 when the job does not wait.
        """
        service().decide(job_id, body.get("decision"))
        return {"status": "approval_received", "job_id": job_id}
