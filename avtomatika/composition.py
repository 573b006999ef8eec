"""The composition root: the one module that wires storage, Celery, the web app and the embedded runner.

No other module of `avtomatika/` imports `webapi` or `celery_app`. The adapters depend on the application
service (`avtomatika.service.Orchestrator`) and on `Registry`, never on the engine facade or on this module.
"""

from __future__ import annotations

from typing import Any

from celery_app.factory import CeleryStepScheduler, create_celery
from webapi.app import create_app

from .registry import Registry
from .runner import EmbeddedRunner
from .service import Orchestrator
from .stream import JOB_ENDS


class Wiring:
    """The Celery app, the application service and the WSGI app of one registry, each built on first use."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._celery: Any = None
        self._service: Orchestrator | None = None

    @property
    def celery(self) -> Any:
        """The Celery application (its tasks call the service)."""
        if self._celery is None:
            self._celery = create_celery(self.registry, lambda: self.service)
        return self._celery

    @property
    def service(self) -> Orchestrator:
        """The application service on the registry's storage, scheduling steps through Celery."""
        if self._service is None:
            history = None
            if self.registry.config.history_url:  # the history extra is needed only then
                from .history import open_history

                history = open_history(self.registry.config)
            self._service = Orchestrator(self.registry, CeleryStepScheduler(self.celery, self.registry), history)
            # completion webhooks, metrics and history subscribe once per engine (a second service would post twice)
            self.registry.stream.subscribe(self._service.webhooks, kinds=JOB_ENDS.values())
            self.registry.stream.subscribe(self._service.metrics)
            if history is not None:
                self.registry.stream.subscribe(history.writer)
                history.writer.start()
        return self._service

    def wsgi_app(self) -> Any:
        """A Flask application serving the HTTP API (client configuration is validated here)."""
        return create_app(self.service)

    def runner(self) -> EmbeddedRunner:
        """Every role inside this process: HTTP API, a Celery worker thread, the sweep."""
        return EmbeddedRunner(self.registry, self.service, self.celery, self.wsgi_app)
