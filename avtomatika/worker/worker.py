"""`Worker`: what a worker offers (task handlers, resources) and how it is started and stopped."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypedDict, TypeVar

from .backoff import BackoffPolicy
from .endpoints import OrchestratorUrls
from .errors import WorkerError
from .handlers import TaskHandler
from .runtime import WorkerRuntime, install_signal_handlers

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


class GpuInfo(TypedDict, total=False):
    """``resources.gpu_info`` of the registration."""

    model: str
    vram_gb: float


class Resources(TypedDict, total=False):
    """``resources`` of the registration; `max_concurrent_tasks` defaults to the worker's `concurrency`."""

    gpu_info: GpuInfo
    cpu_cores: int
    max_concurrent_tasks: int


class InstalledModel(TypedDict):
    """One entry of ``installed_models``."""

    name: str
    version: str


class Worker:
    """An HTTP worker of an Avtomatika orchestrator.

    Register handlers with `@worker.task("type")`, then `worker.run()` (blocking, stops on SIGTERM/SIGINT) or
    ``await worker.start()`` ... ``await worker.stop()`` inside an asyncio program.

    Args:
        worker_id: This worker's id; the token must belong to it (SPEC §5).
        orchestrator_urls: One base URL or several for failover, e.g. ``"http://orchestrator:8080"``.
        token: Sent as ``X-Worker-Token`` on every request; never logged.
        resources: ``{"gpu_info": {"model", "vram_gb"}, "cpu_cores", "max_concurrent_tasks"}``.
        installed_models: ``[{"name", "version"}, ...]``, matched against tasks' resource requirements.
        cost_per_second: Price of this worker, used by cost-aware dispatch strategies.
        hot_cache: Task types this worker has warm (preferred by the default strategy).
        capabilities: Free-form dict registered with the worker.
        concurrency: Tasks run at once; each free slot long-polls for a task.
        heartbeat_interval: Seconds between heartbeats; keep it at most the server's
            ``WORKER_HEALTH_CHECK_INTERVAL_SECONDS`` (60 by default; the server forgets a worker after twice that).
        poll_timeout: How long the server holds a long-poll (its ``WORKER_POLL_TIMEOUT_SECONDS``, 30 by default);
            the client waits this plus `http_timeout` before calling the orchestrator unresponsive.
        http_timeout: Timeout of every other request.
        shutdown_grace_period: Seconds running tasks get to finish on stop before they are reported as
            ``TRANSIENT_ERROR`` failures, so the orchestrator retries them elsewhere.
        use_websocket: Open the command channel (progress updates, instant cancellation).
        backoff: Reconnect backoff after errors (default: 0.5 s doubling up to 30 s, with jitter).
    """

    def __init__(
        self,
        worker_id: str,
        orchestrator_urls: str | Sequence[str],
        token: str,
        *,
        resources: Resources | Mapping[str, Any] | None = None,
        installed_models: Sequence[InstalledModel | Mapping[str, str]] = (),
        cost_per_second: float | None = None,
        hot_cache: Sequence[str] = (),
        capabilities: Mapping[str, Any] | None = None,
        concurrency: int = 1,
        heartbeat_interval: float = 30.0,
        poll_timeout: float = 30.0,
        http_timeout: float = 10.0,
        shutdown_grace_period: float = 30.0,
        use_websocket: bool = True,
        backoff: BackoffPolicy | None = None,
    ) -> None:
        if not isinstance(worker_id, str) or not worker_id:
            raise WorkerError(f"worker_id must be a non-empty string, got {worker_id!r}")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise WorkerError(f"concurrency must be an integer >= 1, got {concurrency!r}")
        for name, value in (
            ("heartbeat_interval", heartbeat_interval),
            ("poll_timeout", poll_timeout),
            ("http_timeout", http_timeout),
        ):
            if not value > 0:
                raise WorkerError(f"{name} must be > 0, got {value!r}")
        if shutdown_grace_period < 0:
            raise WorkerError(f"shutdown_grace_period must be >= 0, got {shutdown_grace_period!r}")
        self.worker_id = worker_id
        # Tells the orchestrator apart two processes started with the same worker_id (it logs a warning).
        self.instance_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.urls = OrchestratorUrls(orchestrator_urls)
        self._token = _checked_token(token)
        self.resources: dict[str, Any] = dict(resources or {})
        self.installed_models = [dict(model) for model in installed_models]
        self.cost_per_second = cost_per_second
        self.hot_cache = list(hot_cache)
        self.capabilities: dict[str, Any] = dict(capabilities or {})
        self.concurrency = concurrency
        self.heartbeat_interval = float(heartbeat_interval)
        self.poll_timeout = float(poll_timeout)
        self.http_timeout = float(http_timeout)
        self.shutdown_grace_period = float(shutdown_grace_period)
        self.use_websocket = use_websocket
        self.backoff = backoff or BackoffPolicy()
        self._handlers: dict[str, TaskHandler] = {}
        self._runtime: WorkerRuntime | None = None

    # --- definition ----------------------------------------------------------------------------------------------

    def task(self, task_type: str | None = None) -> Callable[[F], F]:
        """Decorator registering a handler for `task_type` (default: the function's name).

        The handler may be ``def`` or ``async def``; its parameters are injected by name (see
        `avtomatika.worker.handlers`), e.g. ``def resize(params, ctx)``. Its return value is the result: a
        dict (the `data` of a success), a `TaskResult`, or None. Raising `TaskFailure`, `TransientError`,
        `PermanentError` or `InvalidInputError` reports a failure; any other exception a ``TRANSIENT_ERROR``.
        """

        def register(func: F) -> F:
            name = task_type if task_type is not None else getattr(func, "__name__", "")
            if name in self._handlers:
                raise WorkerError(f"task type {name!r} already has a handler on worker {self.worker_id!r}")
            if self._runtime is not None:
                raise WorkerError("register task handlers before the worker starts")
            self._handlers[name] = TaskHandler.inspect(name, func)
            return func

        return register

    @property
    def task_types(self) -> tuple[str, ...]:
        """The task types this worker handles, in registration order."""
        return tuple(self._handlers)

    def handler(self, task_type: str) -> TaskHandler:
        """The handler registered for `task_type`; `WorkerError` if none is."""
        try:
            return self._handlers[task_type]
        except KeyError:
            known = ", ".join(sorted(self._handlers)) or "none"
            raise WorkerError(f"worker {self.worker_id!r} has no handler for {task_type!r} (known: {known})") from None

    def registration_body(self) -> dict[str, Any]:
        """The JSON body of ``POST /_worker/workers/register``."""
        resources = dict(self.resources)
        resources.setdefault("max_concurrent_tasks", self.concurrency)
        body: dict[str, Any] = {
            "worker_id": self.worker_id,
            "supported_tasks": list(self._handlers),
            "resources": resources,
            "installed_models": list(self.installed_models),
            "hot_cache": list(self.hot_cache),
            "capabilities": dict(self.capabilities),
            "instance_id": self.instance_id,
        }
        if self.cost_per_second is not None:
            body["cost_per_second"] = self.cost_per_second
        return body

    def configure_connection(
        self, orchestrator_urls: str | Sequence[str] | None = None, token: str | None = None
    ) -> None:
        """Replace the orchestrator URLs and/or the token (the CLI's overrides); only before `start()`."""
        if self._runtime is not None:
            raise WorkerError("cannot change the connection of a running worker")
        if orchestrator_urls is not None:
            self.urls = OrchestratorUrls(orchestrator_urls)
        if token is not None:
            self._token = _checked_token(token)

    # --- running -------------------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True between `start()` and the end of `stop()`."""
        return self._runtime is not None

    async def start(self) -> None:
        """Connect, register (retrying until the orchestrator answers) and start polling in the background.

        Raises:
            WorkerError: No handler is registered, the worker already runs, or the orchestrator refused the
                registration (bad token, wrong worker id, invalid body).
        """
        if self._runtime is not None:
            raise WorkerError(f"worker {self.worker_id!r} is already running")
        if not self._handlers:
            raise WorkerError(f"worker {self.worker_id!r} has no task handlers; add some with @worker.task(...)")
        runtime = WorkerRuntime(self, self._token)
        self._runtime = runtime
        try:
            await runtime.start()
        except BaseException:
            self._runtime = None
            raise
        if runtime.stopped.is_set():  # stop() was called while registering
            self._runtime = None

    async def stop(self, grace_period: float | None = None) -> None:
        """Stop gracefully; safe to call more than once.

        Polling stops at once; running tasks get `grace_period` seconds (default `shutdown_grace_period`) to
        finish and report; the rest are reported as ``TRANSIENT_ERROR`` failures so the orchestrator retries them
        elsewhere; then heartbeats, the command channel and connections are closed.
        """
        runtime = self._runtime
        if runtime is None:
            return
        try:
            await runtime.stop(self.shutdown_grace_period if grace_period is None else grace_period)
        finally:
            if self._runtime is runtime:
                self._runtime = None

    async def wait_stopped(self) -> None:
        """Return when the worker has stopped (at once if it is not running)."""
        runtime = self._runtime
        if runtime is not None:
            await runtime.stopped.wait()

    async def heartbeat(self) -> None:
        """Send one heartbeat now and apply its answer (cancellations; registers again after a 404).

        Raises:
            WorkerError: The worker is not running.
            OrchestratorError: The heartbeat did not get through.
        """
        if self._runtime is None:
            raise WorkerError(f"worker {self.worker_id!r} is not running")
        await self._runtime.heartbeat()

    async def serve(self) -> None:
        """Start, stop on SIGTERM/SIGINT (a second signal skips the grace period), return once stopped."""
        remove_handlers = install_signal_handlers(self)
        try:
            await self.start()
            await self.wait_stopped()
        finally:
            remove_handlers()
            await self.stop()

    def run(self) -> None:
        """Block running the worker until SIGTERM/SIGINT or `stop()`."""
        asyncio.run(self.serve())

    def request_stop(self) -> None:
        """Begin stopping without waiting (what SIGTERM/SIGINT do); a second call ends the grace period at once.

        Call it from the worker's event loop.
        """
        if self._runtime is not None:
            self._runtime.request_stop()

    def __repr__(self) -> str:
        return f"<Worker {self.worker_id!r} tasks={list(self._handlers)} urls={list(self.urls.urls)}>"


def _checked_token(token: str) -> str:
    if not isinstance(token, str) or not token:
        raise WorkerError("token must be a non-empty string")
    return token
