"""`OrchestratorEngine`: the seed's entry point. It holds blueprints, storage and config, and starts roles.

Importing it never loads Flask or Celery: the composition root (`avtomatika.composition`) is imported when
a role is first needed (`start()`, `run()`, `wsgi_app()`, `celery`, `service`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from typing import TYPE_CHECKING, Any

from .core import OrchestratorCore, StepScheduler
from .registry import Registry
from .results import TaskEvents
from .service import Orchestrator

if TYPE_CHECKING:  # pragma: no cover
    from .composition import Wiring
    from .runner import EmbeddedRunner

logger = logging.getLogger(__name__)


class OrchestratorEngine(Registry):
    """Register blueprints, then `run()` (blocking) or `await start()` / `await stop()`."""

    def __init__(self, storage: Any = None, config: Any = None) -> None:
        super().__init__(storage, config)
        self._wiring: Wiring | None = None
        self._runner: EmbeddedRunner | None = None

    @property
    def wiring(self) -> Wiring:
        """Celery, the application service and the web app of this engine (built on first use)."""
        with self._lock:
            if self._wiring is None:
                from .composition import Wiring

                self._wiring = Wiring(self)
            return self._wiring

    @property
    def celery(self) -> Any:
        """The Celery application of this engine."""
        return self.wiring.celery

    @property
    def service(self) -> Orchestrator:
        """The application service (what the HTTP API and the Celery tasks call)."""
        return self.wiring.service

    @property
    def core(self) -> OrchestratorCore:
        """The engine core, wired to storage and the Celery step scheduler."""
        return self.service.core

    @property
    def events(self) -> TaskEvents:
        """Worker results, cancellation, progress and timeouts (on the Celery-backed core)."""
        return self.service.events

    def build_core(self, scheduler: StepScheduler) -> OrchestratorCore:
        """A core on this engine's storage with the given scheduler (tests use an inline one)."""
        return Orchestrator(self, scheduler).core

    def run_step(self, job_id: str, seq: int) -> str:
        """Run one step (what the `avtomatika.step` Celery task calls)."""
        return self.service.run_step(job_id, seq)

    def wsgi_app(self) -> Any:
        """The Flask application serving this engine's HTTP API."""
        return self.wiring.wsgi_app()

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the HTTP API, the step workers (a thread pool; a Celery worker thread with Redis) and the sweep
        in the background of this process."""
        if self._runner is not None:
            return
        self._runner = self.wiring.runner()
        await asyncio.get_running_loop().run_in_executor(None, self._runner.start)

    async def stop(self) -> None:
        """Stop everything `start()` started."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await asyncio.get_running_loop().run_in_executor(None, runner.stop)

    @property
    def port(self) -> int:
        """The HTTP port of the roles `start()` started (0 before)."""
        return self._runner.port if self._runner is not None else 0

    def run(self) -> None:
        """Start every role and block until interrupted (Ctrl-C or SIGTERM).

        In a program that configured no logging, this logs to stderr at `LOG_LEVEL` (INFO by default), so the
        start-up lines (where it listens, which tokens to send) are seen, as Flask's `app.run()` does."""
        if not logging.getLogger().handlers:
            from .logs import configure_logging

            configure_logging(self.config.LOG_LEVEL, self.config.LOG_FORMAT)
        runner = self.wiring.runner()
        runner.start()
        restore = _sigterm_as_interrupt()
        try:
            runner.wait()
        except KeyboardInterrupt:
            logger.info("interrupted, stopping")
        finally:
            restore()
            runner.stop()


def _sigterm_as_interrupt() -> Any:
    """In the main thread, and unless the program handles SIGTERM itself, SIGTERM stops `run()` as Ctrl-C does
    (Python's default would end the process at once, without stopping the roles). Returns what undoes it."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        return lambda: None

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, previous)
