"""The embedded default's step scheduler: steps go straight to a thread pool of this process (no broker).

In the embedded default (MemoryStorage, `engine.run()` / `await engine.start()`) everything runs in one process,
so a broker between the code that commits a step and the code that runs the next one is only cost: Celery's
in-memory transport is polled, every message is serialised, acknowledged and traced. `ThreadStepScheduler` keeps
the step semantics of the Celery scheduler (DESIGN §3): one `run_step(job_id, seq)` per scheduled step, run once,
on one of `EMBEDDED_WORKER_CONCURRENCY` threads; a delayed step (a retry) runs after its delay; a stale step
(its `seq` was passed) is dropped by the core as with Celery. Nothing survives a restart, as with the memory
transport before it. Steps scheduled before `start()` wait until then. Redis mode keeps Celery.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from . import tracing

logger = logging.getLogger(__name__)


class StepRunner(Protocol):
    """What the pool calls: the application service's step and native task entry points."""

    def run_step(self, job_id: str, seq: int) -> str: ...

    def run_native_task(self, job_id: str, task_id: str, task_type: str, params: dict[str, Any]) -> str: ...


class ThreadStepScheduler:
    """A `StepScheduler` that runs steps and native tasks on a thread pool of this process.

    `service()` returns the application service (built after this scheduler); `workers` is the pool size.
    """

    chords = False  # fan-ins are triggered by the branch count, as in the embedded default before

    def __init__(self, service: Callable[[], StepRunner], workers: int) -> None:
        self._service = service
        self._workers = max(1, workers)
        self._lock = threading.Condition()
        self._pool: ThreadPoolExecutor | None = None
        self._held: list[Callable[[], Any]] = []  # submitted before start()
        self._timers: list[tuple[float, int, Callable[[], Any]]] = []  # (due, order, call), a heap
        self._order = itertools.count()
        self._timer_thread: threading.Thread | None = None
        self._stopping = False

    # -- StepScheduler ------------------------------------------------------------------------------------

    def schedule_step(
        self, job_id: str, seq: int, delay: float = 0.0, *, blueprint: str = "", state: str = "", resent: bool = False
    ) -> None:
        parent = tracing.current_context()  # the step runs in the trace of what scheduled it (as through Celery)

        def call() -> None:
            with tracing.span("run/avtomatika.step", parent, job_id=job_id):
                self._service().run_step(job_id, seq)

        if delay > 0:
            self._later(time.monotonic() + delay, call)
        else:
            self._submit(call)

    def run_native_task(self, job_id: str, task_id: str, task_type: str, params: dict[str, Any]) -> None:
        parent = tracing.current_context()

        def call() -> None:
            with tracing.span("run/avtomatika.native", parent, job_id=job_id, task_id=task_id):
                self._service().run_native_task(job_id, task_id, task_type, params)

        self._submit(call)

    def step_message(self, job_id: str, seq: int, *, blueprint: str = "", state: str = "") -> tuple[str, str] | None:
        return None  # no broker: the step is scheduled after its commit

    def native_message(
        self, job_id: str, task_id: str, task_type: str, params: dict[str, Any]
    ) -> tuple[str, str] | None:
        return None  # no broker: the native task is submitted after its commit (nothing survives a crash anyway)

    def start_fan_in(self, job_id: str, group_id: str, branch_ids: list[str]) -> None:
        pass  # the branch count triggers the fan-in

    def complete_branch(self, branch_id: str, result: dict[str, Any], context: str) -> None:
        pass

    # -- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the pool and the timer thread, and run what was scheduled before."""
        with self._lock:
            if self._pool is not None:
                return
            self._stopping = False
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="avtomatika-step")
            self._timer_thread = threading.Thread(target=self._timer_loop, name="avtomatika-step-timer", daemon=True)
            self._timer_thread.start()
            held, self._held = self._held, []
        for call in held:
            self._submit(call)

    def stop(self) -> None:
        """Stop taking steps; running steps finish, queued and delayed ones are dropped (as a stopped broker
        would keep them, and the memory transport loses them too)."""
        with self._lock:
            pool, self._pool = self._pool, None
            self._stopping = True
            self._timers.clear()
            self._lock.notify_all()
            timer, self._timer_thread = self._timer_thread, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if timer is not None:
            timer.join(timeout=5)

    # -- internals ----------------------------------------------------------------------------------------

    def _submit(self, call: Callable[[], Any]) -> None:
        with self._lock:
            pool = self._pool
            if pool is None:
                if not self._stopping:
                    self._held.append(call)
                return
        try:
            pool.submit(self._run, call)
        except RuntimeError:  # shut down meanwhile
            logger.debug("step dropped: the step pool is stopping")

    @staticmethod
    def _run(call: Callable[[], Any]) -> None:
        try:
            call()
        except Exception:
            # As a failed Celery step task: logged, not retried (the sweep recovers what has a deadline).
            logger.exception("step failed")

    def _later(self, due: float, call: Callable[[], Any]) -> None:
        with self._lock:
            heapq.heappush(self._timers, (due, next(self._order), call))
            self._lock.notify_all()

    def _timer_loop(self) -> None:
        while True:
            with self._lock:
                while not self._stopping and (not self._timers or self._timers[0][0] > time.monotonic()):
                    timeout = self._timers[0][0] - time.monotonic() if self._timers else None
                    self._lock.wait(timeout)
                if self._stopping:
                    return
                _, _, call = heapq.heappop(self._timers)
            self._submit(call)
