"""The composition root: the one module that wires storage, Celery, the web app and the embedded runner.

No other module of `avtomatika/` imports `webapi` or `celery_app`. The adapters depend on the application
service (`avtomatika.service.Orchestrator`) and on `Registry`, never on the engine facade or on this module.
"""

from __future__ import annotations

from typing import Any

from celery_app.factory import CeleryStepScheduler, create_celery
from webapi.app import create_app

from .metrics import KINDS as METRIC_KINDS
from .registry import Registry
from .runner import CeleryWorkerThread, EmbeddedRunner, StepWorkers
from .service import Orchestrator
from .step_pool import ThreadStepScheduler
from .stream import JOB_ENDS


class Wiring:
    """The Celery app, the application service and the WSGI app of one registry, each built on first use."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._celery: Any = None
        self._service: Orchestrator | None = None
        self._steps: ThreadStepScheduler | None = None

    @property
    def celery(self) -> Any:
        """The Celery application (its tasks call the service)."""
        if self._celery is None:
            self._celery = create_celery(self.registry, lambda: self.service)
        return self._celery

    @property
    def steps(self) -> ThreadStepScheduler | None:
        """The in-process step pool of the embedded default (no Redis configured); None in Redis mode."""
        if self._steps is None and not self.registry.redis_url:
            self._steps = ThreadStepScheduler(lambda: self.service, self.registry.config.EMBEDDED_WORKER_CONCURRENCY)
        return self._steps

    @property
    def service(self) -> Orchestrator:
        """The application service on the registry's storage, scheduling steps through Celery in Redis mode
        and through the in-process step pool in the embedded default."""
        if self._service is None:
            steps = self.steps
            scheduler = steps if steps is not None else CeleryStepScheduler(self.celery, self.registry)
            history = None
            if self.registry.config.history_url:  # the history extra is needed only then
                from .history import open_history

                history = open_history(self.registry.config)
            self._service = Orchestrator(self.registry, scheduler, history)
            # completion webhooks, metrics and history subscribe once per engine (a second service would post twice)
            self.registry.stream.subscribe(self._service.webhooks, kinds=JOB_ENDS.values())
            self.registry.stream.subscribe(self._service.metrics, kinds=METRIC_KINDS)
            if history is not None:
                self.registry.stream.subscribe(history.writer)
                history.writer.start()
        return self._service

    def wsgi_app(self) -> Any:
        """A Flask application serving the HTTP API (client configuration is validated here)."""
        return create_app(self.service)

    def runner(self) -> EmbeddedRunner:
        """Every role inside this process: HTTP API, the step pool (or a Celery worker thread in Redis mode),
        the sweep."""
        service = self.service
        steps: StepWorkers = self.steps or CeleryWorkerThread(self.celery, self.registry)
        return EmbeddedRunner(self.registry, service, steps, self.wsgi_app)
