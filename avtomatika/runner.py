"""Every role inside one process: HTTP API thread, Celery worker thread, sweep thread (DESIGN §7)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from . import tracing
from .config import DEFAULT_CLIENT_TOKEN, DEFAULT_WORKER_TOKEN
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


class EmbeddedRunner:
    """Starts and stops the roles of an engine inside this process; the HTTP port is `port` once started."""

    def __init__(self, registry: Registry, service: Orchestrator, celery: Any, wsgi_app: Callable[[], Any]) -> None:
        self.engine = registry
        self.service = service
        self.celery = celery
        self.make_wsgi_app = wsgi_app
        self.port: int = 0
        self._server: Any = None
        self._worker: Any = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    def start(self) -> None:
        """Start the roles; returns once the HTTP server listens and the worker consumes."""
        from werkzeug.serving import WSGIRequestHandler, make_server

        class KeepAliveHandler(WSGIRequestHandler):
            # HTTP/1.1 keep-alive: a new thread and TCP connection per request cost half the CPU of a job.
            protocol_version = "HTTP/1.1"

        engine = self.engine
        check_production_tokens(engine.config)
        tracing.configure(engine.config, "embedded")  # every role of this process shares one tracer provider
        app = self.make_wsgi_app()  # validates clients.toml/workers.toml before anything runs
        self._start_worker()
        self._server = make_server(
            engine.config.API_HOST, engine.config.API_PORT, app, threaded=True, request_handler=KeepAliveHandler
        )
        self.port = self._server.server_port
        self._spawn("avtomatika-http", self._server.serve_forever)
        self._spawn("avtomatika-sweep", self._sweep_loop)
        announce(engine, self.port)

    def _spawn(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _start_worker(self) -> None:
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
        self._spawn("avtomatika-celery", self._worker.start)
        # The bare WorkController sends no worker_ready signal: wait until its task consumer exists.
        deadline = time.monotonic() + 30
        while getattr(getattr(self._worker, "consumer", None), "task_consumer", None) is None:
            if time.monotonic() > deadline:
                logger.warning("embedded Celery worker is not consuming after 30 s")
                break
            time.sleep(0.01)

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
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._worker is not None:
            try:
                self._worker.stop(in_sighandler=False)
            except Exception:
                logger.exception("stopping the embedded Celery worker failed")
            self._worker = None
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
