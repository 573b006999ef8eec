"""Worker authentication (`X-Worker-Token`): a worker's own token if workers.toml has one, else the global one."""

from __future__ import annotations

import threading
import time

from flask import current_app, request

from avtomatika.security import hash_token, worker_token_matches

from .errors import abort_json
from .ratelimit import rate_limits
from .resources.jobs import engine

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
        found = engine().storage.worker_token_hash(worker_id)
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


def authenticate_worker(worker_id: str) -> None:
    """Allow the request to act as `worker_id`, or answer 401 (bad token) / 403 (another worker's token)."""
    token = request.headers.get(WORKER_HEADER)
    if not token:
        abort_json(401, f"missing {WORKER_HEADER} header")
    current = engine()
    if worker_token_matches(token, token_cache().get(worker_id), current.config.GLOBAL_WORKER_TOKEN):
        rate_limits().hit("worker", worker_id)
        return
    owner = current.storage.worker_token_owner(hash_token(token))
    if owner is not None and owner != worker_id:
        abort_json(403, "this token belongs to another worker: a worker may act only as itself")
    abort_json(401, "invalid worker token")
