"""Admin and operator routes: reload worker tokens, list workers, cancel jobs."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from avtomatika.engine import OrchestratorEngine
from avtomatika.errors import ConfigError
from avtomatika.security import load_worker_tokens

from ..auth import require_admin
from ..errors import abort_json
from .jobs import engine, load_visible_job

blp = Blueprint("admin", __name__, description="Operator routes")


def apply_worker_tokens(current: OrchestratorEngine) -> int:
    """Read workers.toml (when configured) into storage; returns how many workers have their own token.

    Called at start too, where a malformed file stops the start with a message naming file, table and field.
    """
    path = current.config.WORKERS_CONFIG_PATH
    hashes = load_worker_tokens(path) if path else {}
    current.storage.replace_worker_tokens(hashes)
    return len(hashes)


@blp.route("/api/v1/admin/reload-workers")
class ReloadWorkers(MethodView):
    def post(self) -> Any:
        """Re-read workers.toml: added, changed and removed worker tokens take effect at once (admin only)."""
        require_admin()
        try:
            count = apply_worker_tokens(engine())
        except ConfigError as exc:
            abort_json(400, "workers file is invalid; the previous tokens stay in effect", exc.message)
        from ..worker_auth import token_cache

        token_cache().clear()
        return {"status": "reloaded", "workers_with_own_token": count}


@blp.route("/api/v1/workers")
class Workers(MethodView):
    def get(self) -> Any:
        """Live workers: registration data, status, load and reputation (never tokens)."""
        from .workers import public_worker

        return {"workers": [public_worker(w) for w in engine().storage.list_workers()]}


@blp.route("/api/v1/jobs/<job_id>/cancel")
class CancelJob(MethodView):
    def post(self, job_id: str) -> Any:
        """Cancel a non-terminal job (owner or admin): 200, 409 when already terminal, 404 when unknown."""
        load_visible_job(job_id)
        status, answer = engine().events.cancel_job(job_id)
        if status != 200:
            abort_json(status, answer["error"], answer.get("details"))
        return answer
