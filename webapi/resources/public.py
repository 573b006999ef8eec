"""Public routes: health."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from flask import current_app
from flask.views import MethodView

from ..current import service
from ..metrics import metrics_response
from ..schemas import Health
from ..smorest import Blueprint

blp = Blueprint("public", __name__, url_prefix="/_public", description="Public routes (no token)")


@blp.route("/status")
class Status(MethodView):
    @blp.doc(security=[])
    @blp.response(200, Health)
    @blp.alt_response(503, schema=Health, description="Storage or broker unreachable")
    def get(self) -> Any:
        """Health: `{"status": "ok"}` plus storage and broker reachability under `checks`."""
        current = service()
        storage_ok = current.storage_reachable()
        broker = "redis" if current.registry.redis_url else "memory"
        checks = {
            "storage": "ok" if storage_ok else "unreachable",
            "broker": broker if storage_ok else "unreachable",
        }
        status = HTTPStatus.OK if storage_ok else HTTPStatus.SERVICE_UNAVAILABLE
        return {"status": "ok" if storage_ok else "degraded", "checks": checks}, status


@blp.route("/metrics")
class Metrics(MethodView):
    @blp.doc(
        security=[],
        responses={"200": {"description": "Prometheus text format", "content": {"text/plain": {"schema": {}}}}},
    )
    def get(self) -> Any:
        """Prometheus metrics: HTTP requests of every API process, jobs, steps, tasks, queues and workers."""
        return metrics_response(current_app)
