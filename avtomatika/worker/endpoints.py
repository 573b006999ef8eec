"""The orchestrator URLs a worker may talk to, and which one it uses now (failover).

The worker sticks to the URL that works. When a request to the current URL fails at the transport level (or
with a 5xx), the next URL becomes current and the request is retried there at once; only when every URL has
failed since the last success does the caller back off. Several loops share one `OrchestratorUrls`: a failure
reported for a URL that is no longer current does not rotate again.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from urllib.parse import quote, urlsplit

from .errors import WorkerError


def normalize_url(url: str) -> str:
    """Check that `url` is an http(s) base URL and drop a trailing slash."""
    if not isinstance(url, str):
        raise WorkerError(f"orchestrator URL must be a string, got {url!r}")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise WorkerError(f"orchestrator URL must look like http://host:port, got {url!r}")
    if parts.query or parts.fragment:
        raise WorkerError(f"orchestrator URL must not carry a query or fragment, got {url!r}")
    return url.strip().rstrip("/")


class OrchestratorUrls:
    """An ordered, de-duplicated list of orchestrator base URLs with a current one."""

    def __init__(self, urls: str | Sequence[str]) -> None:
        items = [urls] if isinstance(urls, str) else list(urls)
        normalized: list[str] = []
        for url in items:
            base = normalize_url(url)
            if base not in normalized:
                normalized.append(base)
        if not normalized:
            raise WorkerError("at least one orchestrator URL is needed")
        self.urls: tuple[str, ...] = tuple(normalized)
        self._index = 0
        self._failed: set[str] = set()
        self._lock = threading.Lock()

    @property
    def current(self) -> str:
        """The URL to use for the next request."""
        return self.urls[self._index]

    def report_failure(self, url: str) -> bool:
        """Record that `url` is unreachable; rotate if it is current.

        Returns:
            True when every URL has failed since the last success: the caller should back off before retrying.
        """
        with self._lock:
            self._failed.add(url)
            if url == self.urls[self._index]:
                self._index = (self._index + 1) % len(self.urls)
            return self._failed >= set(self.urls)

    def report_success(self, url: str) -> None:
        """Record that `url` answered: the round of failures is over."""
        with self._lock:
            self._failed.clear()

    def websocket_url(self, worker_id: str) -> str:
        """The command channel URL of `worker_id` on the current orchestrator (ws:// or wss://)."""
        base = self.current
        scheme, rest = base.split("://", 1)
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/_worker/ws/{quote(worker_id, safe='')}"

    def __repr__(self) -> str:
        return f"OrchestratorUrls({list(self.urls)!r}, current={self.current!r})"
