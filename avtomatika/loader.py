"""Find the user's engine from `AVTOMATIKA_APP=module:attr` (every process role loads the same module)."""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .engine import OrchestratorEngine

_cache: dict[str, OrchestratorEngine] = {}


def load_engine(spec: str | None = None) -> OrchestratorEngine:
    """Import `module:attr` (attr defaults to `engine`) and return the `OrchestratorEngine` found there."""
    from .engine import OrchestratorEngine

    target = spec or os.environ.get("AVTOMATIKA_APP", "")
    if not target:
        raise ConfigError("AVTOMATIKA_APP is not set: name the module that builds the engine, e.g. my_app:engine")
    if target in _cache:
        return _cache[target]
    module_name, _, attr = target.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"AVTOMATIKA_APP={target!r}: cannot import {module_name!r}: {exc}") from exc
    engine = getattr(module, attr or "engine", None)
    if not isinstance(engine, OrchestratorEngine):
        raise ConfigError(f"AVTOMATIKA_APP={target!r}: {attr or 'engine'!r} is not an OrchestratorEngine")
    _cache[target] = engine
    return engine
