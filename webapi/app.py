"""The Flask application factory: flask-smorest API, auth, JSON errors, docs served from local files."""

from __future__ import annotations

import os
from typing import Any

import flask_swagger_ui
from flask import Flask, send_from_directory
from flask_smorest import Api

from avtomatika.engine import OrchestratorEngine
from avtomatika.security import ClientRegistry

from .auth import CLIENT_HEADER, authenticate_client
from .errors import register_error_handlers
from .ratelimit import RateLimits
from .resources import admin, blueprints, jobs, public, workers
from .schemas import Heartbeat, Register, ResultBody
from .worker_auth import TokenHashCache

SWAGGER_ASSETS = os.path.join(os.path.dirname(flask_swagger_ui.__file__), "dist")


def create_app(engine: OrchestratorEngine) -> Flask:
    """The WSGI app of `engine`; client configuration is validated here, so a bad file stops the start."""
    app = Flask("avtomatika")
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
                    "worker": {"type": "apiKey", "in": "header", "name": "X-Worker-Token"},
                }
            },
        },
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["avtomatika.engine"] = engine
    app.extensions["avtomatika.clients"] = ClientRegistry.from_config(engine.config)
    app.extensions["avtomatika.rate_limits"] = RateLimits(engine)
    app.extensions["avtomatika.worker_tokens"] = TokenHashCache()
    api = Api(app)
    api.register_blueprint(public.blp)
    api.register_blueprint(jobs.blp)
    api.register_blueprint(blueprints.blp)
    api.register_blueprint(jobs.register_create_routes(engine.blueprints))
    api.register_blueprint(workers.blp)
    api.register_blueprint(admin.blp)
    for name, schema in (("Register", Register), ("Heartbeat", Heartbeat), ("ResultBody", ResultBody)):
        api.spec.components.schema(name, schema=schema)
    admin.apply_worker_tokens(engine)
    workers.register_websocket(app)
    _secure_api_routes(api)
    register_error_handlers(app)
    app.before_request(authenticate_client)

    @app.get("/_public/swagger-ui/<path:filename>")
    def swagger_assets(filename: str) -> Any:
        return send_from_directory(SWAGGER_ASSETS, filename, max_age=3600)

    return app


def _secure_api_routes(api: Api) -> None:
    """Mark every `/api/*` operation as needing the client token in the OpenAPI document."""
    for path, operations in api.spec._paths.items():
        if path.startswith("/api/"):
            for operation in operations.values():
                if isinstance(operation, dict):
                    operation.setdefault("security", [{"client": []}])
