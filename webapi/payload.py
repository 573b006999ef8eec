"""Strict JSON request bodies: clear 400s for malformed, non-object or non-finite JSON."""

from __future__ import annotations

import json
import math
from typing import Any

from flask import g, request

from .errors import bad_request


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text[:20]} is out of range for a finite number")
    return value


def json_body(*, required: bool = True) -> Any:
    """The parsed request body (any JSON value); 400 when malformed, 413 when above `MAX_REQUEST_BYTES`."""
    if "json_body" in g:  # parsed once per request (worker auth reads the worker id before validation)
        return g.json_body
    raw = request.get_data(cache=True)
    if not raw.strip():
        if required:
            bad_request("request body must be JSON")
        return None
    try:
        body = json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:
        bad_request("malformed JSON body", str(exc)[:200])
    if b"\\u" in raw and _has_lone_surrogate(body):
        bad_request("malformed JSON body", "a string holds a lone UTF-16 surrogate (not valid Unicode)")
    g.json_body = body
    return body


def _has_lone_surrogate(body: Any) -> bool:
    """Whether any string (key or value) of a parsed body is not valid Unicode (a `\\ud800` escape alone)."""
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def json_object(*, required: bool = True) -> dict[str, Any]:
    """The request body as a JSON object; 400 for any other JSON value."""
    body = json_body(required=required)
    if body is None:
        return {}
    if not isinstance(body, dict):
        bad_request("request body must be a JSON object", {"type": type(body).__name__})
    return body
