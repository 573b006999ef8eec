"""Worker authentication (`X-Worker-Token`): a worker's own token if workers.toml has one, else the global one."""

from __future__ import annotations

import threading
import time

from flask import current_app, g, request

from avtomatika.security import hash_token, worker_token_matches
from avtomatika.tasks import NATIVE_WORKER

from .current import config, service
from .errors import ApiError, forbidden, unauthorized
from .payload import json_body
from .ratelimit import rate_limits
from .schemas import WORKER_ID_PATTERN

WORKER_HEADER = "X-Worker-Token"
CACHE_SECONDS = 2.0


class TokenHashCache:
    """Each worker's individual token hash (or None), cached for `CACHE_SECONDS` per API process.

    A lookup was one Redis round trip per worker request. A reload clears this process's cache at once;
    other API processes see added, changed and revoked tokens within `CACHE_SECONDS`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[str | None, float]] = {}

    def get(self, worker_id: str) -> str | None:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(worker_id)
        if entry is not None and entry[1] > now:
            return entry[0]
        found = service().worker_token_hash(worker_id)
        with self._lock:
            if len(self._entries) > 100_000:
                self._entries.clear()
            self._entries[worker_id] = (found, now + CACHE_SECONDS)
        return found

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def token_cache() -> TokenHashCache:
    """The worker token cache of the running app."""
    found: TokenHashCache = current_app.extensions["avtomatika.worker_tokens"]
    return found


def authenticate_worker_request() -> None:
    """`before_request` for `/_worker/*`: authenticate before any body validation (SPEC §5).

    The worker id comes from the path, else from the body (register, result), as the original's middleware
    did. A request whose body names no usable worker id passes only with a token the server knows (the
    global token or a worker's own), so that it then gets the body's 400; anything else is 401.
    `/_worker/ws` without an id (what SDK 1.0b3 connects to) identifies the worker by its own token.
    """
    if not request.path.startswith("/_worker/"):
        return
    token = request.headers.get(WORKER_HEADER)
    if not token:
        unauthorized(f"missing {WORKER_HEADER} header")
    worker_id = (request.view_args or {}).get("worker_id")
    if worker_id is None and request.path.rstrip("/") == "/_worker/ws":
        owner = service().worker_token_owner(hash_token(token))
        if owner is None:
            unauthorized("/_worker/ws needs the worker's own token (workers.toml), or use /_worker/ws/<worker_id>")
        g.worker_id = owner
        rate_limits().hit("worker", owner)
        return
    if worker_id is None:
        worker_id = _body_worker_id()
    if worker_id is None:
        if not _known_token(token):
            unauthorized("invalid worker token")
        return
    authenticate_worker(worker_id, token)
    g.worker_id = worker_id


def _body_worker_id() -> str | None:
    """The body's `worker_id` when it is a well-formed id, else None (the schema reports the error later)."""
    try:
        body = json_body(required=False)
    except ApiError:
        return None
    worker_id = body.get("worker_id") if isinstance(body, dict) else None
    return worker_id if isinstance(worker_id, str) and WORKER_ID_PATTERN.match(worker_id) else None


def _known_token(token: str) -> bool:
    return worker_token_matches(token, None, config().GLOBAL_WORKER_TOKEN) or (
        service().worker_token_owner(hash_token(token)) is not None
    )


def authenticate_worker(worker_id: str, token: str) -> None:
    """Allow the request to act as `worker_id`, or answer 401 (bad token) / 403 (another worker's token, or
    the id native task types hold their leases under, which no HTTP worker may use)."""
    if worker_id == NATIVE_WORKER:
        forbidden(f"worker id {NATIVE_WORKER!r} is reserved for native task types")
    if worker_token_matches(token, token_cache().get(worker_id), config().GLOBAL_WORKER_TOKEN):
        rate_limits().hit("worker", worker_id)
        return
    owner = service().worker_token_owner(hash_token(token))
    if owner is not None and owner != worker_id:
        forbidden("this token belongs to another worker: a worker may act only as itself")
    unauthorized("invalid worker token")


def authenticated_worker() -> str:
    """The worker id this request was authenticated as."""
    worker_id: str = g.worker_id
    return worker_id
