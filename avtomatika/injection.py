"""Dependency injection by parameter name: signatures are inspected once, at registration."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .context import JobContext
from .errors import HandlerError

CORE_NAMES = (
    "context",
    "job_id",
    "current_state",
    "initial_data",
    "state_history",
    "actions",
    "client",
    "data_stores",
    "aggregation_results",
    "tracing_context",
)


@dataclass(frozen=True)
class Parameter:
    """One handler parameter: its name, whether it has a default, whether it is keyword-only."""

    name: str
    has_default: bool
    keyword_only: bool


@dataclass(frozen=True)
class HandlerSpec:
    """A handler function and its inspected signature."""

    func: Callable[..., Any]
    parameters: tuple[Parameter, ...]
    is_async: bool
    accepts_kwargs: bool

    @classmethod
    def inspect(cls, func: Callable[..., Any]) -> HandlerSpec:
        """Inspect `func` once; rejects positional-only and *args parameters."""
        if not callable(func):
            raise HandlerError(f"handler must be callable, got {func!r}")
        params = []
        accepts_kwargs = False
        for p in inspect.signature(func).parameters.values():
            if p.kind is p.VAR_KEYWORD:
                accepts_kwargs = True
                continue
            if p.kind in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY):
                raise HandlerError(f"handler {func.__qualname__}: parameter {p.name!r} cannot be injected by name")
            params.append(Parameter(p.name, p.default is not p.empty, p.kind is p.KEYWORD_ONLY))
        return cls(func, tuple(params), inspect.iscoroutinefunction(func), accepts_kwargs)

    def arguments(self, context: JobContext) -> dict[str, Any]:
        """Keyword arguments for a call in `context`, or `HandlerError` naming a missing parameter."""
        kwargs: dict[str, Any] = {}
        for param in self.parameters:
            found, value = resolve(param.name, context)
            if found:
                kwargs[param.name] = value
            elif not param.has_default:
                raise HandlerError(
                    f"handler {self.func.__qualname__}: cannot inject parameter {param.name!r}: it is not a "
                    f"context name, nor a key of state_history or initial_data",
                    parameter=param.name,
                )
        return kwargs


def resolve(name: str, context: JobContext) -> tuple[bool, Any]:
    """Find `name`: core names first, then `state_history` keys, then `initial_data` keys."""
    if name == "context":
        return True, context
    if name in CORE_NAMES:
        return True, getattr(context, name)
    if isinstance(context.state_history, dict) and name in context.state_history:
        return True, context.state_history[name]
    if isinstance(context.initial_data, dict) and name in context.initial_data:
        return True, context.initial_data[name]
    return False, None
