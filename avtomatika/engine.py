"""`OrchestratorEngine`: the seed's entry point. It holds blueprints, storage and config, and starts roles.

The engine itself never imports Flask or Celery at module import time: the web and Celery adapters are
loaded when a role starts (`start()`, `run()`, `wsgi_app()`, `celery`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .blueprint import StateMachineBlueprint
from .config import Config
from .core import OrchestratorCore, StepScheduler
from .errors import BlueprintError
from .hooks import HookChain
from .injection import HandlerSpec
from .results import TaskEvents
from .storage.base import StorageBackend
from .storage.memory import MemoryStorage
from .storage.redis import RedisStorage

if TYPE_CHECKING:  # pragma: no cover
    from .runner import EmbeddedRunner

logger = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


class OrchestratorEngine:
    """Register blueprints, then `run()` (blocking) or `await start()` / `await stop()`.

    Storage is chosen when the engine is first used, not when it is constructed, so settings changed on
    `config` after construction take effect: with `REDIS_HOST`/`REDIS_URL` set, Redis is used for state,
    broker and results even if `MemoryStorage()` was passed.
    """

    def __init__(self, storage: StorageBackend | None = None, config: Config | None = None) -> None:
        self.config = config if config is not None else Config()
        self._given_storage = storage if storage is not None else MemoryStorage()
        self._storage: StorageBackend | None = None
        self.blueprints: dict[str, StateMachineBlueprint] = {}
        self.hooks = HookChain()
        self._core: OrchestratorCore | None = None
        self._celery: Any = None
        self._runner: EmbeddedRunner | None = None
        self._events: TaskEvents | None = None
        self.native_tasks: dict[str, HandlerSpec] = {}
        self._lock = threading.RLock()

    # -- blueprints -----------------------------------------------------------------------------------

    def register_blueprint(self, blueprint: StateMachineBlueprint) -> None:
        """Validate `blueprint` and make it runnable; duplicate names and routes are rejected."""
        if blueprint.name in self.blueprints:
            raise BlueprintError(f"blueprint {blueprint.name!r} is already registered", blueprint=blueprint.name)
        blueprint.validate()
        route = blueprint.route
        if route is not None:
            for other in self.blueprints.values():
                if other.route == route:
                    raise BlueprintError(
                        f"blueprint {blueprint.name!r}: route {route} is already used by {other.name!r}",
                        blueprint=blueprint.name,
                    )
        self.blueprints[blueprint.name] = blueprint

    def task_type(self, task_type: str) -> Callable[[F], F]:
        """Register a Python function as a native task type: it runs as a Celery task on queue
        `avtomatika.tasks.<task_type>` and its result goes through the same path as an HTTP worker's.

        The function gets `params` (and optionally `job_id`, `task_id`, `attempt`) by name; it returns the
        result `data` dict, or raises `TransientError`/`PermanentError`/`InvalidInputError`.
        """

        def decorator(func: F) -> F:
            if task_type in self.native_tasks:
                raise BlueprintError(f"native task type {task_type!r} is already registered")
            self.native_tasks[task_type] = HandlerSpec.inspect(func)
            return func

        return decorator

    # -- wiring ---------------------------------------------------------------------------------------

    @property
    def storage(self) -> StorageBackend:
        """The storage in effect (resolved once, on first use)."""
        with self._lock:
            if self._storage is None:
                self._storage = self._resolve_storage()
            return self._storage

    def _resolve_storage(self) -> StorageBackend:
        url = self.config.redis_url
        if url and not isinstance(self._given_storage, RedisStorage):
            logger.info(
                "REDIS_HOST/REDIS_URL is set: using Redis for state, broker and results instead of %s",
                type(self._given_storage).__name__,
            )
            return RedisStorage(url, prefix=self.config.REDIS_KEY_PREFIX)
        return self._given_storage

    @property
    def redis_url(self) -> str:
        """The Redis URL of the storage in effect, or "" in the embedded default."""
        storage = self.storage
        return storage.url if isinstance(storage, RedisStorage) else ""

    @property
    def queue_suffix(self) -> str:
        """ "" in Redis mode; a per-engine suffix in the embedded default, because kombu's memory transport
        shares its queues between every Celery app of a process (two embedded engines would eat each
        other's step messages)."""
        return "" if self.redis_url else f"@{id(self):x}"

    def step_queue(self) -> str:
        """The Celery queue of `avtomatika.step` messages."""
        return "avtomatika.steps" + self.queue_suffix

    def native_queue(self, task_type: str) -> str:
        """The Celery queue of a native task type (`avtomatika.tasks.<type>` in Redis mode)."""
        return f"avtomatika.tasks.{task_type}{self.queue_suffix}"

    @property
    def celery(self) -> Any:
        """The Celery application of this engine (built on first use)."""
        with self._lock:
            if self._celery is None:
                from celery_app.factory import create_celery

                self._celery = create_celery(self)
            return self._celery

    @property
    def core(self) -> OrchestratorCore:
        """The engine core, wired to storage and the Celery step scheduler."""
        with self._lock:
            if self._core is None:
                from celery_app.factory import CeleryStepScheduler

                self._core = self.build_core(CeleryStepScheduler(self.celery))
            return self._core

    def build_core(self, scheduler: StepScheduler) -> OrchestratorCore:
        """A core on this engine's storage with the given scheduler (tests use an inline one)."""
        return OrchestratorCore(self.storage, self.config, self.blueprints, scheduler, self.hooks, self.native_tasks)

    @property
    def events(self) -> TaskEvents:
        """Worker results, cancellation, progress and timeouts (on the Celery-backed core)."""
        with self._lock:
            if self._events is None:
                self._events = TaskEvents(self.core)
            return self._events

    def run_step(self, job_id: str, seq: int) -> str:
        """Run one step (what the `avtomatika.step` Celery task calls)."""
        return self.core.run_step(job_id, seq)

    def wsgi_app(self) -> Any:
        """The Flask application serving this engine's HTTP API."""
        from webapi.app import create_app

        return create_app(self)

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the HTTP API, a Celery worker thread and the sweep in the background of this process."""
        from .runner import EmbeddedRunner

        if self._runner is not None:
            return
        self._runner = EmbeddedRunner(self)
        await asyncio.get_running_loop().run_in_executor(None, self._runner.start)

    async def stop(self) -> None:
        """Stop everything `start()` started."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await asyncio.get_running_loop().run_in_executor(None, runner.stop)

    def run(self) -> None:
        """Start every role and block until interrupted (Ctrl-C or SIGTERM)."""
        from .runner import EmbeddedRunner

        runner = EmbeddedRunner(self)
        runner.start()
        try:
            runner.wait()
        except KeyboardInterrupt:
            logger.info("interrupted, stopping")
        finally:
            runner.stop()
