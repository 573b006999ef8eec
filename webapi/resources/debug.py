"""`POST /_public/debug/flush_db`: served only when `DEBUG_ENDPOINTS=true`, and only to admin clients."""

from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView

from ..auth import CLIENT_HEADER, registry
from ..current import service
from ..errors import forbidden, unauthorized
from ..schemas import StatusAnswer
from ..smorest import Blueprint
from ..worker_auth import token_cache

blp = Blueprint("debug", __name__, url_prefix="/_public/debug", description="Debug routes (DEBUG_ENDPOINTS=true)")


@blp.route("/flush_db")
class FlushDb(MethodView):
    @blp.response(200, StatusAnswer)
    @blp.errors(401, 403)
    def post(self) -> Any:
        """Delete every job, queue, lease and worker record (the original's answer: `{"status": "db_flushed"}`).

        Needs an admin client token (the original had no auth). Worker tokens from `workers.toml` are put
        back at once, so per-worker tokens never fall back to the global token.
        """
        client = registry().authenticate(request.headers.get(CLIENT_HEADER))
        if client is None:
            unauthorized(f"missing or invalid {CLIENT_HEADER} header")
        if not client.is_admin:
            forbidden("this route needs an admin client")
        service().flush()
        token_cache().clear()
        return {"status": "db_flushed"}
