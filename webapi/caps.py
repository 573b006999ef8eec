"""Caps on the long requests one identity holds open at once in this API process: `?wait` long-polls of a
client and task long-polls of a worker. Beyond its cap a request gets 429 at once, so no identity can tie up
a process's connections. The counts are per process (they vanish with it, so a crash leaves nothing to
clean up): with N API processes an identity can hold up to N x the cap.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import current_app

from .errors import too_many_requests


class OpenRequests:
    """How many long requests each identity has open in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, int] = {}

    @contextmanager
    def slot(self, kind: str, identity: str, cap: int) -> Iterator[None]:
        """Hold one of `identity`'s `cap` slots for the duration of the request; 429 when none is free."""
        key = f"{kind}:{identity}"
        with self._lock:
            held = self._open.get(key, 0)
            if held >= cap:
                too_many_requests(
                    f"too many open long requests for this {kind} ({cap} at once per API process)",
                    {"open": held, "limit": cap},
                    1.0,
                )
            self._open[key] = held + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._open[key] - 1
                if left:
                    self._open[key] = left
                else:  # no entry for an identity with nothing open: memory stays bounded
                    del self._open[key]


def open_requests() -> OpenRequests:
    """The counter of the running app."""
    found: OpenRequests = current_app.extensions["avtomatika.open_requests"]
    return found
