"""`avtomatika check APP`: every problem a start would hit (or log), found without starting anything."""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

from .errors import AvtomatikaError


class _Collect(logging.Handler):
    """Keeps the WARNING and ERROR records of the loggers it is attached to."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message not in self.messages:
            self.messages.append(message)


def find_problems(spec: str | None) -> tuple[list[str], list[str]]:
    """(problems, what was checked) of the engine `spec` names; each problem is one line."""
    from .loader import load_engine
    from .security import load_clients, load_worker_tokens

    problems: list[str] = []
    checked: list[str] = []
    collect = _Collect()
    watched = [logging.getLogger("avtomatika.blueprint")]  # default tokens are fine outside production
    levels = [logger.level for logger in watched]
    for logger in watched:
        logger.addHandler(collect)
        logger.setLevel(logging.WARNING)
        logger.propagate = False  # printed once, as a problem
    try:
        try:
            engine: Any = load_engine(spec)
        except AvtomatikaError as exc:
            return [f"error: {exc}"], checked
        except Exception as exc:  # the module itself is broken (a syntax error, a failing import-time call)
            return [f"error: importing {spec!r} raised {type(exc).__name__}: {exc}"], checked
        for blueprint in engine.blueprints.values():
            try:
                blueprint.validate()
            except AvtomatikaError as exc:  # a blueprint changed after registration
                problems.append(f"error: {exc}")
        checked.append(f"{len(engine.blueprints)} blueprints ({', '.join(sorted(engine.blueprints))})")
        config = engine.config
        for path, load, what in (
            (config.CLIENTS_CONFIG_PATH, load_clients, "clients file"),
            (config.WORKERS_CONFIG_PATH, load_worker_tokens, "workers file"),
        ):
            if path:
                try:
                    load(path)
                    checked.append(f"{what} {path}")
                except AvtomatikaError as exc:
                    problems.append(f"error: {exc}")
        from .security import check_production_tokens

        try:
            check_production_tokens(config)
        except AvtomatikaError as exc:
            problems.append(f"error: {exc}")
        from .storage.redis import RedisStorage

        if isinstance(engine.storage, RedisStorage):
            unreachable = engine.storage.unreachable()
            if unreachable:
                problems.append(f"error: {unreachable}")
            else:
                checked.append(f"Redis at {engine.redis_url.rsplit('@', 1)[-1]}")
    finally:
        for logger, level in zip(watched, levels, strict=True):
            logger.removeHandler(collect)
            logger.setLevel(level)
            logger.propagate = True
    problems.extend(f"warning: {message}" for message in collect.messages)
    return problems, checked


def print_checks(spec: str | None, out: TextIO = sys.stdout) -> int:
    """Print the problems (or what was checked); 1 when there is any problem, else 0."""
    problems, checked = find_problems(spec)
    for problem in problems:
        print(problem, file=out)
    if problems:
        print(f"{len(problems)} problem(s) found", file=out)
        return 1
    print("ok: " + "; ".join(checked), file=out)
    return 0
