"""What an engine holds before anything runs: settings, storage, blueprints, native task types, the event stream.

`OrchestratorEngine` (the seed's entry point) extends this with its lifecycle; the composition root and the
adapters read it. It never imports Flask or Celery.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .blueprint import StateMachineBlueprint
from .config import Config
from .errors import BlueprintError
from .injection import HandlerSpec
from .notifiers import Notifier, log_notifier, webhook_notifier
from .storage.base import StorageBackend
from .storage.memory import MemoryStorage
from .storage.redis import RedisStorage
from .stream import EventStream

logger = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


class Registry:
    """Blueprints, native task types, the event stream, config and the storage in effect.

    Storage is chosen when first used, not when constructed, so settings changed on `config` after
    construction take effect: with `REDIS_HOST`/`REDIS_URL` set, Redis is used for state, broker and
    results even if `MemoryStorage()` was passed.
    """

    def __init__(self, storage: StorageBackend | None = None, config: Config | None = None) -> None:
        self.config = config if config is not None else Config()
        self._given_storage = storage if storage is not None else MemoryStorage()
        self._storage: StorageBackend | None = None
        self.blueprints: dict[str, StateMachineBlueprint] = {}
        self.stream = EventStream()  # job and worker events; see `avtomatika.stream`
        self.native_tasks: dict[str, HandlerSpec] = {}
        self.notifiers: dict[str, Notifier] = {"log": log_notifier, "webhook": webhook_notifier(self.config)}
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

    def register_notifier(self, integration: str, notifier: Notifier) -> None:
        """Tell `notifier` about every approval request whose `integration` is this name (replaces a
        built-in of that name). It gets an `ApprovalRequest`; exceptions are logged, never fatal."""
        self.notifiers[integration] = notifier

    # -- storage and queue names ----------------------------------------------------------------------

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

    def sweep_queue(self) -> str:
        """The Celery queue of the periodic `avtomatika.sweep` (its own, so a step backlog cannot delay it)."""
        return "avtomatika.sweep" + self.queue_suffix

    def native_queue(self, task_type: str) -> str:
        """The Celery queue of a native task type (`avtomatika.tasks.<type>` in Redis mode)."""
        return f"avtomatika.tasks.{task_type}{self.queue_suffix}"
