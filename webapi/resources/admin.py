"""Operator routes: reload worker tokens, list workers, the dashboard."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from avtomatika.errors import ConfigError

from ..auth import require_admin
from ..current import service
from ..errors import bad_request
from ..schemas import Dashboard, ReloadAnswer, WorkerRecord
from ..smorest import Blueprint
from ..worker_auth import token_cache

blp = Blueprint("admin", __name__, description="Operators: workers, dashboard, token reload")


@blp.route("/admin/reload-workers")
class ReloadWorkers(MethodView):
    @blp.response(200, ReloadAnswer)
    @blp.errors(400, 401, 403, 429)
    def post(self) -> Any:
        """Re-read workers.toml: added, changed and removed worker tokens take effect at once (admin only)."""
        require_admin()
        try:
            count = service().reload_worker_tokens()
        except ConfigError as exc:
            bad_request("workers file is invalid; the previous tokens stay in effect", exc.message)
        token_cache().clear()
        return {"status": "worker_configs_reloaded", "workers_with_own_token": count}


@blp.route("/workers")
class Workers(MethodView):
    @blp.response(200, WorkerRecord(many=True))
    @blp.errors(401, 429)
    def get(self) -> Any:
        """Live workers, a JSON list as the original's: registration data, status, load, reputation (no tokens)."""
        return service().list_workers()


@blp.route("/dashboard")
class DashboardView(MethodView):
    @blp.response(200, Dashboard)
    @blp.errors(401, 429)
    def get(self) -> Any:
        """Jobs by status, tasks waiting for a worker (in total and by task type), live workers (in total, by
        status, by task type) and, with history enabled, the history backlog; in the original's shape."""
        return service().dashboard()
