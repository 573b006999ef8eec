"""Every error leaves the API as JSON `{"error": "...", "details": ...}`; HTTP mapping lives only here."""

from __future__ import annotations

import logging
import math
from typing import Any, NoReturn

from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from avtomatika.errors import (
    AvtomatikaError,
    ConflictError,
    NotFound,
    QuotaExceeded,
    TransitionNotAllowed,
    Unauthorized,
    Unavailable,
    Unsupported,
)

logger = logging.getLogger(__name__)

try:  # Redis mode: a Redis that is down or does not answer in time is a 503, not a 500
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    STORAGE_DOWN: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError)
except ImportError:  # pragma: no cover - the embedded default without the redis extra
    STORAGE_DOWN = ()


class ApiError(Exception):
    """An error answer: status code, message and optional details."""

    def __init__(self, status: int, message: str, details: Any = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details
        self.headers = headers or {}


def abort_json(status: int, message: str, details: Any = None, headers: dict[str, str] | None = None) -> NoReturn:
    """Stop the request with a JSON error."""
    raise ApiError(status, message, details, headers)


# The request-level errors of the HTTP layer, by name: status codes are decided here and nowhere else.


def bad_request(message: str, details: Any = None) -> NoReturn:
    """400: the request is malformed (body, query, header)."""
    abort_json(400, message, details)


def unauthorized(message: str) -> NoReturn:
    """401: no valid credentials."""
    abort_json(401, message)


def forbidden(message: str) -> NoReturn:
    """403: valid credentials that may not do this."""
    abort_json(403, message)


MAX_URL_BYTES = 4096


def check_url_length() -> None:
    """414 for a request line's URL over `MAX_URL_BYTES` (before authentication and routing); gunicorn
    (deploy/gunicorn.conf.py) lets URLs up to 8 KB through to here so the answer is JSON, not its HTML page."""
    environ = request.environ
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    length = len(raw) if raw else len(request.full_path)
    if length > MAX_URL_BYTES:
        abort_json(414, "request URL too long", {"limit_bytes": MAX_URL_BYTES})


def too_many_requests(message: str, details: Any, retry_after: float) -> NoReturn:
    """429: over a rate limit; `Retry-After` says when to resend."""
    abort_json(429, message, details, {"Retry-After": str(max(1, math.ceil(retry_after)))})


def _response(status: int, message: str, details: Any = None, headers: dict[str, str] | None = None) -> Any:
    body = jsonify({"error": message, "details": details})
    body.status_code = status
    for name, value in (headers or {}).items():
        body.headers[name] = value
    return body


_DOMAIN_STATUS: list[tuple[type[AvtomatikaError], int]] = [
    (NotFound, 404),
    (ConflictError, 409),
    (TransitionNotAllowed, 409),
    (Unsupported, 501),
    (Unauthorized, 401),
    (Unavailable, 503),
]


def register_error_handlers(app: Flask) -> None:
    """Map every exception to a JSON answer (replacing flask-smorest's own HTTP error handler)."""

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> Any:
        return _response(exc.status, exc.message, exc.details, exc.headers)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        details = None
        data = getattr(exc, "data", None)
        if isinstance(data, dict):
            details = data.get("messages") or data.get("errors")
        headers = {}
        if exc.code == 404 and request.path.startswith("/api/"):
            routes = current_app.extensions["avtomatika.service"].create_routes()
            message = f"no route {request.method} {request.path[:200]}"
            return _response(404, message, {"job_routes": routes, "job_view": "GET /api/v1/jobs/<job_id (a UUID)>"})
        if exc.code == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        return _response(exc.code or 500, exc.description or exc.name, details, headers)

    @app.errorhandler(AvtomatikaError)
    def domain_error(exc: AvtomatikaError) -> Any:
        details = exc.context or None
        if isinstance(exc, QuotaExceeded):
            return _response(429, exc.message, details, {"Retry-After": str(math.ceil(exc.retry_after))})
        for kind, status in _DOMAIN_STATUS:
            if isinstance(exc, kind):
                return _response(status, exc.message, details)
        return _response(400, exc.message, details)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        if isinstance(exc, STORAGE_DOWN):
            logger.warning("storage unavailable: %s", exc)
            return _response(503, "storage unavailable", None, {"Retry-After": "2"})
        logger.exception("unhandled error in request")
        return _response(500, "internal error")
