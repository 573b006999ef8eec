"""Find the user's engine from `AVTOMATIKA_APP=module:attr` (every process role loads the same module)."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from .errors import ConfigError
from .registry import Registry

_cache: dict[str, Any] = {}


def load_engine(spec: str | None = None) -> Any:
    """Import `module:attr` (attr defaults to `engine`) and return the `OrchestratorEngine` found there."""
    target = spec or os.environ.get("AVTOMATIKA_APP", "")
    if not target:
        raise ConfigError("AVTOMATIKA_APP is not set: name the module that builds the engine, e.g. my_app:engine")
    if target in _cache:
        return _cache[target]
    try:
        engine = import_object(target, "engine")
    except ImportError as exc:
        raise ConfigError(f"AVTOMATIKA_APP={target!r}: {exc}") from exc
    if not isinstance(engine, Registry) or not hasattr(type(engine), "wiring"):
        if any(f"{c.__module__}.{c.__name__}" == "avtomatika.worker.worker.Worker" for c in type(engine).__mro__):
            raise ConfigError(
                f"{target!r} is a worker (avtomatika.worker.Worker), not an OrchestratorEngine: "
                f"run it with `avtomatika worker {target}`"
            )
        raise ConfigError(f"AVTOMATIKA_APP={target!r}: this is not an OrchestratorEngine")
    _cache[target] = engine
    return engine


def import_object(spec: str, default_attr: str) -> Any:
    """The object named by `module:attr` (attr defaults to `default_attr`), importing from the working directory
    too; `ImportError` names what is missing."""
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise ImportError(f"{spec!r}: expected module:attr")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"cannot import {module_name!r}: {exc}") from exc
    name = attr or default_attr
    if not hasattr(module, name):
        raise ImportError(f"module {module_name!r} has no {name!r}")
    return getattr(module, name)


def check_storage(engine: Any) -> None:
    """Raise `ConfigError` (one line) when the engine uses Redis and it does not answer a PING."""
    from .storage.redis import RedisStorage

    storage = engine.storage
    if isinstance(storage, RedisStorage):
        problem = storage.unreachable()
        if problem:
            raise ConfigError(problem)
