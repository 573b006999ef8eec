"""Public routes: health."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint

blp = Blueprint("public", __name__, url_prefix="/_public", description="Public routes (no token)")


@blp.route("/status")
class Status(MethodView):
    @blp.doc(security=[])
    def get(self) -> Any:
        """Health: `{"status": "ok"}` plus storage and broker reachability under `checks`."""
        engine = current_app.extensions["avtomatika.engine"]
        storage_ok = engine.storage.ping()
        broker = "redis" if engine.redis_url else "memory"
        checks = {
            "storage": "ok" if storage_ok else "unreachable",
            "broker": broker if storage_ok else "unreachable",
        }
        return {"status": "ok" if storage_ok else "degraded", "checks": checks}, 200 if storage_ok else 503
