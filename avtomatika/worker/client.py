"""One HTTP request per call to the worker routes of the current orchestrator; answers become typed errors.

The client keeps the failover bookkeeping of `OrchestratorUrls` (a usable answer is a success, a transport
error, 5xx or malformed answer a failure that rotates); waiting and retrying are the runtime's business.
Every request carries ``X-Worker-Token`` (set on the `httpx.AsyncClient`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from .backoff import parse_retry_after
from .endpoints import OrchestratorUrls
from .errors import (
    OrchestratorUnavailable,
    RateLimited,
    RequestRejected,
    StaleResult,
    WorkerUnknown,
)

TOKEN_HEADER = "X-Worker-Token"
TRACE_HEADERS = ("traceparent", "tracestate")  # W3C trace context, as the task payload's `tracing_context` holds it


class OrchestratorClient:
    """The four HTTP routes of SPEC §4 for one worker id.

    Args:
        http: Client with the token header set; owned by the caller.
        urls: Shared URL list; requests go to `urls.current`.
        worker_id: This worker's id (used in paths).
        poll_timeout: How long the server may hold a long-poll; the read timeout of a poll adds `http_timeout`.
        http_timeout: Timeout of every other request.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        urls: OrchestratorUrls,
        worker_id: str,
        *,
        poll_timeout: float,
        http_timeout: float,
    ) -> None:
        self.http = http
        self.urls = urls
        self.worker_id = worker_id
        self._path_id = quote(worker_id, safe="")
        self.poll_timeout = poll_timeout
        self.http_timeout = http_timeout

    async def register(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /_worker/workers/register``; the answer is ``{"status": "registered"}``."""
        response = await self._request("POST", "/_worker/workers/register", json=dict(body))
        return self._answer(response)

    async def heartbeat(self, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``PATCH /_worker/workers/{id}``: no body refreshes the TTL, a body also updates status/load.

        Raises:
            WorkerUnknown: 404, the orchestrator forgot this worker.
        """
        path = f"/_worker/workers/{self._path_id}"
        response = await self._request("PATCH", path, json=None if body is None else dict(body))
        if response.status_code == 404:
            raise WorkerUnknown(f"orchestrator does not know worker {self.worker_id!r}", url=response_base(response))
        return self._answer(response)

    async def next_task(self) -> dict[str, Any] | None:
        """``GET /_worker/workers/{id}/tasks/next`` long-poll: a task payload, or None (204).

        Raises:
            WorkerUnknown: 404, the orchestrator forgot this worker.
        """
        timeout = httpx.Timeout(self.http_timeout, read=self.poll_timeout + self.http_timeout)
        response = await self._request("GET", f"/_worker/workers/{self._path_id}/tasks/next", timeout=timeout)
        if response.status_code == 204:
            return None
        if response.status_code == 404:
            raise WorkerUnknown(f"orchestrator does not know worker {self.worker_id!r}", url=response_base(response))
        return self._answer(response)

    async def send_result(self, body: Mapping[str, Any], trace: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``POST /_worker/tasks/result``; `trace` is the task's ``tracing_context``, sent as the W3C
        ``traceparent``/``tracestate`` headers so the result request is part of the job's trace.

        Raises:
            StaleResult: 409, the lease moved on; the result must not be sent again.
        """
        context = trace if isinstance(trace, Mapping) else {}
        headers = {k: v for k, v in context.items() if k in TRACE_HEADERS and isinstance(v, str)}
        response = await self._request("POST", "/_worker/tasks/result", json=dict(body), headers=headers)
        if response.status_code == 409:
            raise StaleResult(
                f"result for task {body.get('task_id')!r} refused as stale: {error_text(response)}",
                url=response_base(response),
                status_code=409,
            )
        return self._answer(response)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        timeout: httpx.Timeout | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        base = self.urls.current
        try:
            response = await self.http.request(
                method, base + path, json=json, headers=headers, timeout=timeout or httpx.Timeout(self.http_timeout)
            )
        except httpx.TransportError as exc:
            raise self._unavailable(f"{method} {path} on {base}: {type(exc).__name__}: {exc}", base) from exc
        response.extensions["avtomatika_base"] = base
        if response.status_code >= 500:
            raise self._unavailable(
                f"{method} {path} on {base}: {response.status_code} {error_text(response)}",
                base,
                response.status_code,
            )
        self.urls.report_success(base)
        if response.status_code == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
            raise RateLimited(f"{method} {path} on {base}: rate limited", url=base, retry_after=retry_after)
        return response

    def _answer(self, response: httpx.Response) -> dict[str, Any]:
        """The JSON object of a 2xx answer; other 4xx become `RequestRejected`."""
        base = response_base(response)
        request = response.request
        if 400 <= response.status_code < 500:
            error, details = error_fields(response)
            raise RequestRejected(
                f"{request.method} {request.url.path} on {base}: {response.status_code} {error}",
                url=base,
                status_code=response.status_code,
                error=error,
                details=details,
            )
        if not 200 <= response.status_code < 300:
            raise self._unavailable(
                f"{request.method} {request.url.path} on {base}: unexpected {response.status_code}",
                base,
                response.status_code,
            )
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            # A proxy's HTML page, say: this URL is not a working orchestrator right now.
            raise self._unavailable(
                f"{request.method} {request.url.path} on {base}: answer is not a JSON object",
                base,
                response.status_code,
            )
        return answer

    def _unavailable(self, message: str, base: str, status_code: int | None = None) -> OrchestratorUnavailable:
        all_failed = self.urls.report_failure(base)
        return OrchestratorUnavailable(message, url=base, status_code=status_code, all_failed=all_failed)


def response_base(response: httpx.Response) -> str:
    """The orchestrator base URL a response came from."""
    return str(response.extensions.get("avtomatika_base", ""))


def error_fields(response: httpx.Response) -> tuple[str, Any]:
    """``(error, details)`` of a JSON error body ``{"error", "details"}``; the raw text when not JSON."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase, None
    if isinstance(body, dict):
        return str(body.get("error", response.reason_phrase)), body.get("details")
    return response.reason_phrase, body


def error_text(response: httpx.Response) -> str:
    """A one-line description of an error answer, for logs."""
    error, details = error_fields(response)
    return f"{error} ({details})" if details else error
