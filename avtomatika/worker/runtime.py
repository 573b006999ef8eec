"""The running part of a `Worker`: registration, heartbeats, poll slots, result reports and shutdown.

One `WorkerRuntime` lives from `Worker.start()` to the end of `Worker.stop()`. It runs on one asyncio loop:
`concurrency` poll slots (each long-polls while free, then runs its task and reports the result), a heartbeat
loop and, optionally, the WebSocket command channel. Sync handlers run in daemon threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from .backoff import BackoffPolicy, retry_delay
from .channel import CommandChannel
from .client import TOKEN_HEADER, OrchestratorClient
from .context import Task, TaskContext
from .endpoints import OrchestratorUrls
from .errors import (
    ErrorCode,
    OrchestratorError,
    RequestRejected,
    StaleResult,
    WorkerError,
    WorkerUnknown,
)
from .handlers import TaskHandler, run_handler
from .results import TaskResult, cancelled, failure, result_body


class Worker(Protocol):
    """What the runtime reads of its `avtomatika.worker.Worker` (a protocol, so the two modules do not import
    each other)."""

    worker_id: str
    urls: OrchestratorUrls
    concurrency: int
    heartbeat_interval: float
    poll_timeout: float
    http_timeout: float
    use_websocket: bool
    backoff: BackoffPolicy

    def handler(self, task_type: str) -> TaskHandler: ...

    def registration_body(self) -> dict[str, Any]: ...

    def request_stop(self) -> None: ...

    async def stop(self, grace_period: float | None = None) -> None: ...


logger = logging.getLogger(__name__)

# How long stop() keeps trying to deliver the reports of unfinished tasks after the grace period.
FINAL_REPORT_TIMEOUT = 10.0


@dataclass
class InFlight:
    """A task this worker holds: its context and, once the handler is done, its result."""

    ctx: TaskContext
    result: TaskResult | None = None


class Reporter:
    """The `TaskReporter` of live tasks: progress over the command channel, heartbeats that never raise."""

    def __init__(self, runtime: WorkerRuntime) -> None:
        self.runtime = runtime

    async def report_progress(self, task: Task, fraction: float, message: str) -> None:
        """Send a progress update over the WebSocket, or drop it (debug log) when there is none."""
        channel = self.runtime.channel
        if channel is not None and await channel.send_progress(task.task_id, fraction, message):
            return
        logger.debug("progress %.2f of task %s not sent: no command channel connected", fraction, task.task_id)

    async def heartbeat(self) -> None:
        """A heartbeat asked for by a handler; failures are logged, never raised into the task."""
        try:
            await self.runtime.heartbeat()
        except OrchestratorError as exc:
            logger.warning("heartbeat requested by a task failed: %s", exc)


class WorkerRuntime:
    """The background machinery of one started `Worker` (see the module docstring)."""

    def __init__(self, worker: Worker, token: str) -> None:
        self.worker = worker
        self.http = httpx.AsyncClient(
            headers={TOKEN_HEADER: token},
            # One long-poll per slot, plus heartbeats and results.
            limits=httpx.Limits(max_connections=worker.concurrency + 4),
        )
        self.client = OrchestratorClient(
            self.http,
            worker.urls,
            worker.worker_id,
            poll_timeout=worker.poll_timeout,
            http_timeout=worker.http_timeout,
        )
        self.channel: CommandChannel | None = None
        if worker.use_websocket:
            self.channel = CommandChannel(
                worker.urls, worker.worker_id, token, self.cancel_task, worker.backoff, worker.http_timeout
            )
        self.reporter = Reporter(self)
        self.in_flight: dict[str, InFlight] = {}
        self.stopping = asyncio.Event()
        self.stopped = asyncio.Event()
        self.hurry = asyncio.Event()
        self.slots: list[asyncio.Task[None]] = []
        self.busy_slots: set[asyncio.Task[Any]] = set()
        self.background: list[asyncio.Task[None]] = []
        self.registrations = 0
        self._register_lock = asyncio.Lock()
        self._heartbeat_lock = asyncio.Lock()
        self._report_status = True
        self._last_status: dict[str, Any] | None = None
        self._stop_task: asyncio.Task[None] | None = None

    # --- lifecycle -----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Register (retrying), then start the heartbeat loop, the command channel and the poll slots."""
        try:
            registered = await self.register()
        except BaseException:
            await self.http.aclose()
            raise
        if not registered:  # stop() came first
            await self.http.aclose()
            self.stopped.set()
            return
        self.background.append(watched(self.heartbeat_loop(), "avtomatika-heartbeat"))
        if self.channel is not None:
            self.background.append(watched(self.channel.run(), "avtomatika-command-channel"))
        for number in range(self.worker.concurrency):
            self.slots.append(watched(self.poll_slot(), f"avtomatika-slot-{number}"))

    async def stop(self, grace_period: float) -> None:
        """See `Worker.stop()`."""
        if self.stopping.is_set():
            await self.stopped.wait()
            return
        self.stopping.set()
        if not self.slots:  # still registering: start() cleans up
            await self.stopped.wait()
            return
        busy = [slot for slot in self.slots if slot in self.busy_slots]
        for slot in self.slots:
            if slot not in self.busy_slots:
                slot.cancel()  # an idle slot is in a long-poll
        logger.info(
            "worker %s stopping: %d task(s) get %.1fs to finish", self.worker.worker_id, len(busy), grace_period
        )
        await self._wait_for(busy, grace_period)
        unfinished = list(self.in_flight.values())
        for slot in self.slots:
            slot.cancel()
        await asyncio.gather(*self.slots, return_exceptions=True)
        if unfinished:
            await asyncio.gather(*(self._report_unfinished(entry) for entry in unfinished))
        for task in self.background:
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        await self.http.aclose()
        logger.info("worker %s stopped", self.worker.worker_id)
        self.stopped.set()

    async def _wait_for(self, slots: list[asyncio.Task[None]], grace_period: float) -> None:
        """Wait until `slots` finish, the grace period ends, or `hurry` is set."""
        pending: set[asyncio.Task[Any]] = set(slots)
        if not pending:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_period
        hurry = asyncio.create_task(self.hurry.wait())
        try:
            while pending and not self.hurry.is_set():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                done, _ = await asyncio.wait(pending | {hurry}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                pending -= done
        finally:
            hurry.cancel()

    async def _report_unfinished(self, entry: InFlight) -> None:
        task = entry.ctx.task
        result = entry.result
        if result is None:
            if entry.ctx.is_cancelled:
                result = cancelled()
            else:
                message = f"worker {self.worker.worker_id} shut down before the task finished"
                result = failure(message, ErrorCode.TRANSIENT)
                logger.warning(
                    "task %s (%s) unfinished at shutdown: reporting TRANSIENT_ERROR", task.task_id, task.type
                )
        # A sync handler may still run in its thread; this lets a cooperative one stop soon.
        entry.ctx.mark_cancelled()
        try:
            await asyncio.wait_for(self.report(task, result), FINAL_REPORT_TIMEOUT)
        except TimeoutError:
            logger.error("could not report task %s before shutdown; its lease will expire", task.task_id)

    def request_stop(self) -> None:
        """Begin stopping from a signal handler: the first call stops, the next ones hurry."""
        if self.stopping.is_set():
            logger.warning("worker %s: stop requested again, not waiting for running tasks", self.worker.worker_id)
            self.hurry.set()
            return
        self._stop_task = asyncio.create_task(self.worker.stop())

    # --- registration and heartbeats -----------------------------------------------------------------------------

    async def register(self) -> bool:
        """Register, retrying on unavailability; False when stop() came first.

        Raises:
            WorkerError: The orchestrator refused the registration (4xx).
        """
        failures = 0
        while not self.stopping.is_set():
            try:
                await self.client.register(self.worker.registration_body())
            except RequestRejected as exc:
                raise WorkerError(
                    f"orchestrator {exc.url} refused to register worker {self.worker.worker_id!r}: "
                    f"{exc.status_code} {exc.error}",
                    details=exc.details,
                ) from exc
            except OrchestratorError as exc:
                failures += 1
                logger.warning("registration failed (%s); retrying", exc)
                await self._sleep_unless_stopping(self.retry_delay(exc, failures))
                continue
            self.registrations += 1
            self._last_status = None
            logger.info("worker %s registered at %s", self.worker.worker_id, self.worker.urls.current)
            return True
        return False

    async def register_again(self, seen: int) -> None:
        """Register after a 404, once for all loops that saw registration number `seen` forgotten."""
        async with self._register_lock:
            if self.registrations != seen:
                return
            logger.warning("the orchestrator forgot worker %s; registering again", self.worker.worker_id)
            try:
                await self.register()
            except WorkerError as exc:
                logger.error("%s", exc)

    async def heartbeat(self) -> None:
        """Send one heartbeat (with status/load when they changed) and apply the answer's `cancel_tasks`."""
        async with self._heartbeat_lock:
            seen = self.registrations
            status = self.load_status()
            body = status if self._report_status and status != self._last_status else None
            try:
                answer = await self.client.heartbeat(body)
            except WorkerUnknown:
                await self.register_again(seen)
                return
            except RequestRejected as exc:
                if body is None or exc.status_code not in (400, 422):
                    raise
                logger.warning("orchestrator refused heartbeat body %s (%s); sending empty heartbeats", body, exc.error)
                self._report_status, body = False, None
                answer = await self.client.heartbeat(None)
            if body is not None:
                self._last_status = body
            cancel = answer.get("cancel_tasks")
            if isinstance(cancel, list):
                for task_id in cancel:
                    if isinstance(task_id, str):
                        self.cancel_task(task_id, None)

    def load_status(self) -> dict[str, Any]:
        """``{"status": "idle"|"busy", "load": running / concurrency}``; busy means every slot is taken."""
        running = len(self.in_flight)
        return {
            "status": "busy" if running >= self.worker.concurrency else "idle",
            "load": round(running / self.worker.concurrency, 3),
        }

    async def heartbeat_loop(self) -> None:
        """Heartbeat every `heartbeat_interval`; after a failure, retry sooner (backoff, capped by the interval)."""
        interval = self.worker.heartbeat_interval
        delay, failures = interval, 0
        while True:
            await asyncio.sleep(delay)
            try:
                await self.heartbeat()
            except OrchestratorError as exc:
                failures += 1
                delay = min(interval, self.retry_delay(exc, failures))
                log = logger.error if isinstance(exc, RequestRejected) else logger.warning
                log("heartbeat failed: %s", exc)
            else:
                delay, failures = interval, 0

    def cancel_task(self, task_id: str, job_id: str | None) -> None:
        """Flag a held task as cancelled (from a WebSocket push or a heartbeat answer)."""
        entry = self.in_flight.get(task_id)
        if entry is None:
            logger.debug("cancellation of task %s that this worker does not run", task_id)
            return
        if not entry.ctx.is_cancelled:
            logger.info("task %s of job %s cancelled by the orchestrator", task_id, entry.ctx.job_id)
            entry.ctx.mark_cancelled()

    # --- tasks ---------------------------------------------------------------------------------------------------

    async def poll_slot(self) -> None:
        """Long-poll while free; run the task received, report it; until stopping."""
        failures = 0
        while not self.stopping.is_set():
            seen = self.registrations
            try:
                payload = await self.client.next_task()
            except WorkerUnknown:
                await self.register_again(seen)
                continue
            except OrchestratorError as exc:
                failures += 1
                log = logger.error if isinstance(exc, RequestRejected) else logger.warning
                log("polling failed: %s", exc)
                await self._sleep_unless_stopping(self.retry_delay(exc, failures))
                continue
            failures = 0
            if payload is None:
                continue
            slot = asyncio.current_task()
            assert slot is not None
            self.busy_slots.add(slot)
            try:
                await self.process(payload)
            except Exception:  # a bug on this side must not kill the slot: it would never poll again
                logger.exception("task %s could not be processed; the slot polls on", payload.get("task_id"))
            finally:
                self.busy_slots.discard(slot)

    async def process(self, payload: dict[str, Any]) -> None:
        """Run one task payload and report its result."""
        try:
            task = Task.from_payload(payload)
        except ValueError as exc:
            logger.error("orchestrator sent a malformed task: %s", exc)
            return
        if self.stopping.is_set():
            # Received while shutting down: hand it back at once so another worker gets it.
            await self.report(task, failure(f"worker {self.worker.worker_id} is shutting down", ErrorCode.TRANSIENT))
            return
        started = time.monotonic()
        entry = InFlight(TaskContext(task, self.reporter))
        self.in_flight[task.task_id] = entry
        try:
            try:
                handler = self.worker.handler(task.type)
            except WorkerError as exc:
                # The orchestrator should not send it; another worker may have the handler, so retry there.
                entry.result = failure(exc.message, ErrorCode.TRANSIENT)
            else:
                logger.debug(
                    "task %s (%s) of job %s: attempt %d started", task.task_id, task.type, task.job_id, task.attempt
                )
                entry.result = await run_handler(handler, entry.ctx)
            await self.report(task, entry.result, started)
        finally:
            self.in_flight.pop(task.task_id, None)

    async def report(self, task: Task, result: TaskResult, started: float | None = None) -> None:
        """POST the result, retrying while the orchestrator is unreachable; 409 and other 4xx are not retried.

        The one INFO line of a task is logged here, once the orchestrator accepted its result."""
        body = result_body(task.job_id, task.task_id, self.worker.worker_id, result)
        try:  # what the orchestrator would refuse (400) is reported as the handler's failure instead
            json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")
        except (ValueError, UnicodeEncodeError) as exc:
            logger.error("task %s: the handler's result is not valid JSON (%s); reporting a failure", task.task_id, exc)
            invalid = failure(f"the handler's result is not valid JSON: {str(exc)[:200]}", ErrorCode.PERMANENT)
            body = result_body(task.job_id, task.task_id, self.worker.worker_id, invalid)
        failures = 0
        while True:
            try:
                await self.client.send_result(body, task.tracing_context)
            except StaleResult:
                logger.warning("result of task %s refused as stale (409): the lease moved on; dropped", task.task_id)
                return
            except RequestRejected as exc:
                logger.error(
                    "result of task %s refused: %s %s %s", task.task_id, exc.status_code, exc.error, exc.details
                )
                return
            except OrchestratorError as exc:
                failures += 1
                logger.warning("sending the result of task %s failed (%s); retrying", task.task_id, exc)
                await asyncio.sleep(self.retry_delay(exc, failures))
                continue
            error = result.error or {}
            detail = f" [{error.get('code') or 'no code'}: {error.get('message', '')}]" if error else ""
            took = f" in {time.monotonic() - started:.2f} s" if started is not None else ""
            logger.info(
                "task %s (%s) of job %s, attempt %d: %s%s%s",
                task.task_id,
                task.type,
                task.job_id,
                task.attempt,
                result.status,
                took,
                detail,
            )
            return

    # --- helpers -------------------------------------------------------------------------------------------------

    def retry_delay(self, exc: OrchestratorError, failures: int) -> float:
        """Seconds to wait before retrying after `exc` (see `backoff.retry_delay`)."""
        return retry_delay(exc, failures, self.worker.backoff)

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)


def watched(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    """A background task whose unexpected death is logged (a dead poll slot would otherwise go unnoticed)."""
    task = asyncio.create_task(coro, name=name)

    def log_crash(done: asyncio.Task[None]) -> None:
        if not done.cancelled() and done.exception() is not None:
            logger.error("%s crashed", name, exc_info=done.exception())

    task.add_done_callback(log_crash)
    return task


def install_signal_handlers(worker: Worker) -> Callable[[], None]:
    """Stop `worker` on SIGTERM/SIGINT while it serves; returns the function that removes the handlers.

    Does nothing outside the main thread or where the loop cannot watch signals (Windows).
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []

    def on_signal(signum: signal.Signals) -> None:
        logger.info("received %s", signum.name)
        worker.request_stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, on_signal, signum)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows
            continue
        installed.append(signum)

    def remove() -> None:
        for signum in installed:
            loop.remove_signal_handler(signum)

    return remove
