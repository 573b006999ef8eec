"""Worker authentication (`X-Worker-Token`): a worker's own token if workers.toml has one, else the global one."""

from __future__ import annotations

from flask import request

from avtomatika.security import hash_token, worker_token_matches

from .errors import abort_json
from .ratelimit import rate_limits
from .resources.jobs import engine

WORKER_HEADER = "X-Worker-Token"


def authenticate_worker(worker_id: str) -> None:
    """Allow the request to act as `worker_id`, or answer 401 (bad token) / 403 (another worker's token)."""
    token = request.headers.get(WORKER_HEADER)
    if not token:
        abort_json(401, f"missing {WORKER_HEADER} header")
    current = engine()
    storage = current.storage
    if worker_token_matches(token, storage.worker_token_hash(worker_id), current.config.GLOBAL_WORKER_TOKEN):
        rate_limits().hit("worker", worker_id)
        return
    owner = storage.worker_token_owner(hash_token(token))
    if owner is not None and owner != worker_id:
        abort_json(403, "this token belongs to another worker: a worker may act only as itself")
    abort_json(401, "invalid worker token")
