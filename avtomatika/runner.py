"""Every role inside one process: HTTP API, the step workers, the sweep thread (DESIGN §7).

The step workers are the in-process step pool (`step_pool.ThreadStepScheduler`) in the embedded default and a
Celery worker thread (`CeleryWorkerThread`) when Redis is configured.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from . import process_roles, tracing
from .config import DEFAULT_CLIENT_TOKEN, DEFAULT_WORKER_TOKEN
from .http_server import HttpServer
from .registry import Registry
from .security import check_production_tokens
from .service import Orchestrator

logger = logging.getLogger(__name__)


def announce(engine: Registry, port: int) -> None:
    """Log where the API listens, the storage in use and which tokens to send (only default tokens are shown:
    they are public; a configured token is named by its variable, never printed)."""
    config = engine.config
    mode = "redis" if engine.redis_url else "embedded (in memory; nothing survives a restart)"
    host = "127.0.0.1" if config.API_HOST in ("0.0.0.0", "") else config.API_HOST
    logger.info("Avtomatika listening on http://%s:%s (bound to %s), storage: %s", host, port, config.API_HOST, mode)
    client = repr(config.CLIENT_TOKEN) if config.CLIENT_TOKEN == DEFAULT_CLIENT_TOKEN else "the value of CLIENT_TOKEN"
    worker = (
        repr(config.GLOBAL_WORKER_TOKEN)
        if config.GLOBAL_WORKER_TOKEN == DEFAULT_WORKER_TOKEN
        else "the value of GLOBAL_WORKER_TOKEN"
    )
    logger.info("clients send X-Avtomatika-Token: %s; workers send X-Worker-Token: %s", client, worker)
    logger.info("API docs: http://%s:%s/_public/docs", host, port)


class StepWorkers(Protocol):
    """What runs the steps inside this process: started before the HTTP API, stopped after it."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class CeleryWorkerThread:
    """A Celery worker (threads pool) consuming the engine's step and native queues in a thread of this process."""

    def __init__(self, celery: Any, registry: Registry) -> None:
        self.celery = celery
        self.engine = registry
        self._worker: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        celery = self.celery
        celery.finalize()
        celery.set_current()
        celery.set_default()
        self._worker = celery.WorkController(
            pool_cls="threads",
            concurrency=self.engine.config.EMBEDDED_WORKER_CONCURRENCY,
            loglevel=logging.WARNING,
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            hostname=f"embedded-{id(self)}@localhost",
            queues=[self.engine.step_queue(), *(self.engine.native_queue(t) for t in self.engine.native_tasks)],
        )
        self._thread = threading.Thread(target=self._worker.start, name="avtomatika-celery", daemon=True)
        self._thread.start()
        # The bare WorkController sends no worker_ready signal: wait until its task consumer exists.
        deadline = time.monotonic() + 30
        while getattr(getattr(self._worker, "consumer", None), "task_consumer", None) is None:
            if time.monotonic() > deadline:
                logger.warning("embedded Celery worker is not consuming after 30 s")
                break
            time.sleep(0.01)

    def stop(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            try:
                worker.stop(in_sighandler=False)
            except Exception:
                logger.exception("stopping the embedded Celery worker failed")
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


class EmbeddedRunner:
    """Starts and stops the roles of an engine inside this process; the HTTP port is `port` once started."""

    def __init__(
        self, registry: Registry, service: Orchestrator, steps: StepWorkers, wsgi_app: Callable[[], Any]
    ) -> None:
        self.engine = registry
        self.service = service
        self.steps = steps
        self.make_wsgi_app = wsgi_app
        self.port: int = 0
        self._server: Any = None
        self._roles: process_roles.ProcessRoles | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    def start(self) -> None:
        """Start the roles; returns once the HTTP server listens and the worker consumes."""
        engine = self.engine
        check_production_tokens(engine.config)
        tracing.configure(engine.config, "embedded")  # every role of this process shares one tracer provider
        app = self.make_wsgi_app()  # validates clients.toml/workers.toml before anything runs
        if self._start_processes():
            return
        self.service.stop_waiting(False)  # a restart after `stop()` holds requests again
        self.steps.start()
        self._server = HttpServer(engine.config.API_HOST, engine.config.API_PORT, app)
        self.port = self._server.port
        self._spawn("avtomatika-http", self._server.serve)
        self._spawn("avtomatika-sweep", self._sweep_loop)
        announce(engine, self.port)

    def _start_processes(self) -> bool:
        """With Redis: the API and the step worker as child processes (`process_roles`), if they can be."""
        app = process_roles.wanted(self.engine)
        if app is None:
            return False
        roles = process_roles.ProcessRoles(self.engine, app)
        try:
            roles.start()
        except Exception as exc:
            logger.warning("could not start the roles as processes (%s); running them in this process", exc)
            return False
        self._roles = roles
        self.port = roles.port
        self._spawn("avtomatika-sweep", self._sweep_loop)
        announce(self.engine, self.port)
        logger.info("the API (gunicorn gevent) and the step worker (Celery) run as child processes loading %s", app[0])
        return True

    def _spawn(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _sweep_loop(self) -> None:
        interval = float(self.engine.config.WATCHER_INTERVAL_SECONDS)
        while not self._stopping.wait(interval):
            try:
                self.service.sweep()
            except Exception:
                logger.exception("sweep failed")

    def wait(self) -> None:
        """Block until `stop()` is called from another thread."""
        while not self._stopping.wait(1.0):
            pass

    def stop(self) -> None:
        """Stop the HTTP server, the worker and the sweep; safe to call twice."""
        self._stopping.set()
        if self._roles is not None:
            self._roles.stop()
            self._roles = None
        if self._server is not None:
            # held long-polls (`tasks/next`, a job GET with `?wait=`, a WebSocket's command wait) answer now
            # instead of keeping their threads, and the stop, for up to their timeout (30 s by default)
            self.service.stop_waiting()
            self._server.stop()
            self._server = None
        self.steps.stop()  # a no-op when it never started
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
