"""The Flask application factory: flask-smorest API, auth, JSON errors, docs served from local files."""

from __future__ import annotations

import inspect
import os
from typing import Any

import flask_swagger_ui
from flask import Flask, send_from_directory

from avtomatika import tracing
from avtomatika.quotas import warn_unkept_quotas
from avtomatika.registry import Registry
from avtomatika.security import ClientRegistry
from avtomatika.service import Orchestrator

from .auth import CLIENT_HEADER, authenticate_client
from .caps import OpenRequests
from .errors import check_url_length, register_error_handlers
from .metrics import install_metrics
from .ratelimit import RateLimits
from .resources import admin, approvals, blueprints, debug, jobs, public, workers
from .smorest import Api
from .worker_auth import WORKER_HEADER, TokenHashCache, authenticate_worker_request

SWAGGER_ASSETS = os.path.join(os.path.dirname(flask_swagger_ui.__file__), "dist")


class AvtomatikaFlask(Flask):
    """Flask, remembering which functions are coroutines: Flask's `ensure_sync` runs for every hook and view
    of every request, and each call ran `inspect.iscoroutinefunction` (~5 % of a request's CPU). Keyed by the
    plain function, since a MethodView's handler is a new bound method on each request."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._coroutine: dict[Any, bool] = {}

    def ensure_sync(self, func: Any) -> Any:
        plain = getattr(func, "__func__", func)
        coroutine = self._coroutine.get(plain)
        if coroutine is None:
            coroutine = self._coroutine[plain] = inspect.iscoroutinefunction(plain)
        return self.async_to_sync(func) if coroutine else func


def create_app(service: Orchestrator) -> Flask:
    """The WSGI app of `service`; client configuration is validated here, so a bad file stops the start."""
    engine = service.registry
    app = AvtomatikaFlask("avtomatika")
    app.config.update(
        API_TITLE="Avtomatika",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/_public",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="/_public/swagger-ui/",
        MAX_CONTENT_LENGTH=engine.config.MAX_REQUEST_BYTES,
        API_SPEC_OPTIONS={
            "components": {
                "securitySchemes": {
                    "client": {"type": "apiKey", "in": "header", "name": CLIENT_HEADER},
                    "worker": {"type": "apiKey", "in": "header", "name": WORKER_HEADER},
                    "approval": {"type": "apiKey", "in": "header", "name": approvals.APPROVAL_HEADER},
                }
            },
            # every operation needs the client token unless it says otherwise (public and worker routes do)
            "security": [{"client": []}],
        },
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["avtomatika.service"] = service
    clients = ClientRegistry.from_config(engine.config)
    app.extensions["avtomatika.clients"] = clients
    with_quota = [client.client_id for client in clients.clients if client.monthly_attempts is not None]
    warn_unkept_quotas(with_quota, persistent=bool(engine.redis_url))
    app.extensions["avtomatika.rate_limits"] = RateLimits(engine)
    app.extensions["avtomatika.worker_tokens"] = TokenHashCache()
    app.extensions["avtomatika.open_requests"] = OpenRequests()
    app.url_map.converters["job_id"] = jobs.JobIdConverter
    api = Api(app)
    api.register_converter(jobs.JobIdConverter, jobs.job_id_param)
    for blp in (public.blp, approvals.blp, *jobs.create_routes(engine.blueprints), workers.blp):
        api.register_blueprint(blp)
    if engine.config.DEBUG_ENDPOINTS:
        api.register_blueprint(debug.blp)
    # The common client routes live under /api/v1 and, as in the original, under every other API version a
    # blueprint uses (`/api/v2/jobs/<id>`, or `/api/jobs/<id>` for blueprints without a version).
    for prefix in client_api_prefixes(engine):
        suffix = "" if prefix == "/api/v1" else prefix.removeprefix("/api").replace("/", "_") or "_unversioned"
        for blp in (jobs.blp, blueprints.blp, admin.blp):
            api.register_blueprint(blp, url_prefix=prefix, name=blp.name + suffix)
    service.reload_worker_tokens()
    workers.register_websocket(app)
    register_error_handlers(app)
    app.before_request(check_url_length)
    install_metrics(app, service)
    if tracing.configure(engine.config, "api"):
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        FlaskInstrumentor().instrument_app(app, excluded_urls="_public/metrics,_public/status")
    app.before_request(authenticate_client)
    app.before_request(authenticate_worker_request)
    app.before_request(approvals.authorize_decision)

    @app.get("/_public/swagger-ui/<path:filename>")
    def swagger_assets(filename: str) -> Any:
        return send_from_directory(SWAGGER_ASSETS, filename, max_age=3600)

    @app.get("/favicon.ico")
    def favicon() -> Any:
        """Browsers ask for it on every page (the docs page): Swagger UI's icon, not a 404 in the console."""
        return send_from_directory(SWAGGER_ASSETS, "favicon-32x32.png", mimetype="image/png", max_age=86400)

    return app


def client_api_prefixes(engine: Registry) -> list[str]:
    """`/api/v1` plus the prefix of every API version a registered blueprint's create route uses."""
    versions = {bp.api_version or "" for bp in engine.blueprints.values() if bp.route is not None}
    return ["/api/v1", *sorted(f"/api/{v}".rstrip("/") for v in versions - {"v1"})]
