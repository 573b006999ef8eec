"""Task handlers: their signature is inspected once, at registration; arguments are injected by name.

A handler is ``def`` or ``async def``. Each parameter is filled by its name: ``params`` (the task's params
dict), ``ctx`` or ``context`` (the `TaskContext`), ``job_id``, ``task_id``, ``task_type``, ``attempt``,
``deadline``, ``priority``, ``tracing_context``; any other name is looked up as a key of ``params``, so
``def resize(url, width=512)`` works too. A parameter that cannot be filled and has no default makes the task
fail with ``INVALID_INPUT_ERROR`` naming it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .context import TaskContext
from .errors import InvalidInputError, TaskCancelled, TaskFailure, WorkerError
from .results import TaskResult, cancelled, result_from_exception, result_from_value

logger = logging.getLogger(__name__)

CONTEXT_NAMES = ("ctx", "context")
# Parameter names filled from the `TaskContext` attribute of the same name.
TASK_FIELDS = frozenset(
    {"params", "job_id", "task_id", "task_type", "attempt", "deadline", "priority", "tracing_context"}
)


@dataclass(frozen=True)
class TaskHandler:
    """A registered handler: the function, its task type and its inspected parameters."""

    task_type: str
    func: Callable[..., Any]
    parameters: tuple[tuple[str, bool], ...]  # (name, has_default)
    is_async: bool

    @classmethod
    def inspect(cls, task_type: str, func: Callable[..., Any]) -> TaskHandler:
        """Inspect `func` once; rejects what cannot be injected by name (``*args``, positional-only)."""
        if not isinstance(task_type, str) or not task_type:
            raise WorkerError(f"task type must be a non-empty string, got {task_type!r}")
        if not callable(func):
            raise WorkerError(f"handler for {task_type!r} must be callable, got {func!r}")
        parameters = []
        for p in inspect.signature(func).parameters.values():
            if p.kind is p.VAR_KEYWORD:
                continue
            if p.kind in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY):
                raise WorkerError(
                    f"handler {func.__qualname__} for {task_type!r}: parameter {p.name!r} cannot be injected by name"
                )
            parameters.append((p.name, p.default is not p.empty))
        return cls(task_type, func, tuple(parameters), inspect.iscoroutinefunction(func))

    def arguments(self, ctx: TaskContext) -> dict[str, Any]:
        """Keyword arguments for running in `ctx`; `InvalidInputError` names a parameter that cannot be filled."""
        params = ctx.params
        if not isinstance(params, Mapping):
            raise InvalidInputError(f"params must be a JSON object, got {type(params).__name__}")
        kwargs: dict[str, Any] = {}
        for name, has_default in self.parameters:
            if name in CONTEXT_NAMES:
                kwargs[name] = ctx
            elif name in TASK_FIELDS:
                kwargs[name] = getattr(ctx, name)
            elif name in params:
                kwargs[name] = params[name]
            elif not has_default:
                raise InvalidInputError(f"task {self.task_type!r} needs param {name!r}, which params lack")
        return kwargs


async def run_handler(handler: TaskHandler, ctx: TaskContext) -> TaskResult:
    """Run `handler` in `ctx` and turn whatever happens into the result to report.

    Sync handlers run in a daemon thread, so one that ignores shutdown cannot keep the process alive. A task
    cancelled while it ran is reported `cancelled`, whatever the handler returned or raised.
    """
    try:
        kwargs = handler.arguments(ctx)
        if handler.is_async:
            value = await handler.func(**kwargs)
        else:
            value = await run_in_thread(handler.func, kwargs, name=f"avtomatika-task-{ctx.task_id}")
            if inspect.isawaitable(value):  # e.g. a wrapper that hides an async function
                value = await value
        result = result_from_value(value)
    except Exception as exc:
        result = result_from_exception(exc)
        if not ctx.is_cancelled:
            log_failure(ctx, exc, result)
    if ctx.is_cancelled:
        return cancelled()
    return result


def log_failure(ctx: TaskContext, exc: Exception, result: TaskResult) -> None:
    """Log a failed task: a traceback for unexpected exceptions, one line for raised outcomes."""
    code = (result.error or {}).get("code")
    if isinstance(exc, TaskCancelled):
        logger.debug("task %s (%s) ended as cancelled", ctx.task_id, ctx.task_type)
    elif isinstance(exc, TaskFailure):
        logger.debug("task %s (%s) failed [%s]: %s", ctx.task_id, ctx.task_type, code or "no code", exc.message)
    else:
        logger.error("task %s (%s) raised", ctx.task_id, ctx.task_type, exc_info=exc)


async def run_in_thread(func: Callable[..., Any], kwargs: dict[str, Any], *, name: str) -> Any:
    """Call ``func(**kwargs)`` in a new daemon thread and await its outcome."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if future.done():  # abandoned at shutdown
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def target() -> None:
        value: Any = None
        error: BaseException | None = None
        try:
            value = func(**kwargs)
        except Exception as exc:
            error = exc
        except BaseException as exc:  # SystemExit and the like must not leave the future pending
            error = RuntimeError(f"handler raised {type(exc).__name__}: {exc}")
        try:
            loop.call_soon_threadsafe(settle, value, error)
        except RuntimeError:
            logger.debug("event loop closed before thread %s finished; its outcome is dropped", name)

    threading.Thread(target=target, name=name, daemon=True).start()
    return await future
