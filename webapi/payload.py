"""Strict JSON request bodies: clear 400s for malformed, non-object or non-finite JSON."""

from __future__ import annotations

import json
from typing import Any

from flask import request

from .errors import abort_json


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def json_body(*, required: bool = True) -> Any:
    """The parsed request body (any JSON value); 400 when malformed, 413 when above `MAX_REQUEST_BYTES`."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        if required:
            abort_json(400, "request body must be JSON")
        return None
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        abort_json(400, "malformed JSON body", str(exc)[:200])


def json_object(*, required: bool = True) -> dict[str, Any]:
    """The request body as a JSON object; 400 for any other JSON value."""
    body = json_body(required=required)
    if body is None:
        return {}
    if not isinstance(body, dict):
        abort_json(400, "request body must be a JSON object", {"type": type(body).__name__})
    return body
