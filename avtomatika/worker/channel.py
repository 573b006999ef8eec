"""The WebSocket command channel: cancellations pushed by the orchestrator, progress sent by the worker.

The channel is optional. Without the `websockets` package, or while disconnected, progress updates are
dropped (debug log) and cancellations still arrive with heartbeat answers. It reconnects with backoff to the
orchestrator that is current for HTTP.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .backoff import BackoffPolicy
from .client import TOKEN_HEADER
from .endpoints import OrchestratorUrls

if TYPE_CHECKING:  # pragma: no cover
    from websockets.asyncio.client import ClientConnection

logger = logging.getLogger(__name__)


class CommandChannel:
    """Keeps one WebSocket to ``/_worker/ws/{worker_id}`` open while the worker runs.

    Args:
        urls: Shared URL list; each connection goes to the current orchestrator.
        worker_id: This worker's id.
        token: Sent as ``X-Worker-Token`` on the handshake.
        on_cancel: Called with ``(task_id, job_id)`` for each ``cancel_task`` command.
        policy: Reconnect backoff.
        open_timeout: Seconds allowed for the handshake.
    """

    def __init__(
        self,
        urls: OrchestratorUrls,
        worker_id: str,
        token: str,
        on_cancel: Callable[[str, str | None], None],
        policy: BackoffPolicy,
        open_timeout: float = 10.0,
    ) -> None:
        self.urls = urls
        self.worker_id = worker_id
        self._token = token
        self.on_cancel = on_cancel
        self.policy = policy
        self.open_timeout = open_timeout
        self._connection: ClientConnection | None = None
        self.connected = asyncio.Event()

    async def run(self) -> None:
        """Connect, read commands, reconnect after failures; runs until cancelled."""
        try:
            from websockets.asyncio.client import connect
            from websockets.exceptions import InvalidStatus, WebSocketException
        except ImportError:
            logger.info("the websockets package is not installed: no progress updates, cancellations via heartbeats")
            return
        failures = 0
        while True:
            url = self.urls.websocket_url(self.worker_id)
            try:
                async with connect(
                    url,
                    additional_headers={TOKEN_HEADER: self._token},
                    open_timeout=self.open_timeout,
                    close_timeout=1,
                ) as connection:
                    self._connection = connection
                    self.connected.set()
                    failures = 0
                    logger.info("command channel connected to %s", url)
                    async for message in connection:
                        self.dispatch(message)
            except InvalidStatus as exc:
                logger.warning("command channel refused by %s: HTTP %s", url, exc.response.status_code)
            except (OSError, TimeoutError, WebSocketException) as exc:
                logger.info("command channel to %s lost: %s: %s", url, type(exc).__name__, exc)
            finally:
                self._connection = None
                self.connected.clear()
            failures += 1
            await asyncio.sleep(self.policy.delay(failures))

    def dispatch(self, message: str | bytes) -> None:
        """Act on one message from the orchestrator."""
        try:
            command: Any = json.loads(message)
        except ValueError:
            logger.warning("command channel: ignoring a message that is not JSON")
            return
        if not isinstance(command, dict):
            logger.warning("command channel: ignoring a message that is not a JSON object")
            return
        if command.get("command") == "cancel_task" and isinstance(command.get("task_id"), str):
            job_id = command.get("job_id")
            self.on_cancel(command["task_id"], job_id if isinstance(job_id, str) else None)
        else:
            logger.debug("command channel: ignoring command %r", command.get("command"))

    async def send_progress(self, task_id: str, fraction: float, message: str) -> bool:
        """Send a ``progress_update`` event; False (nothing sent) when not connected."""
        connection = self._connection
        if connection is None:
            return False
        event = {"event": "progress_update", "task_id": task_id, "progress": fraction, "message": message}
        from websockets.exceptions import ConnectionClosed

        try:
            await connection.send(json.dumps(event))
        except ConnectionClosed as exc:  # progress is advisory: a closing connection loses it
            logger.debug("progress of task %s not sent: %s", task_id, exc)
            return False
        return True
