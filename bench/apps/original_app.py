"""The original avtomatika 1.0b4 (from PyPI, in its own virtualenv) running the bench's blueprints.

Runs with the interpreter of `.bench-venvs/original-1.0b4` (built by `bench.original.original_python`), from a
working directory outside the repository so `import avtomatika` finds the original, never this project:

    API_PORT=8123 [REDIS_URL=redis://127.0.0.1:6379/0] .bench-venvs/original-1.0b4/bin/python bench/apps/original_app.py

Blueprints, the same shapes as this project's bench apps:
- `linear` (`POST /api/v1/jobs/linear`): the five states of `blueprints/linear.py`, same handler bodies, all
  `async def` (1.0b4 awaits every handler); `done` moves to `finished`, since 1.0b4 ends a job only on a move to a
  terminal state, and leaves `status` at `running` (the driver reads the end from `current_state`).
- `bench_echo` (`POST /api/v1/jobs/bench_echo`): dispatch_task("bench_echo") -> success -> finished.
- `bench_parked` (`POST /api/v1/jobs/bench_parked`): the same for a task type no worker serves.

Bugs of 1.0b4 worked around here, because they block the scenarios (see bench/README.md):
- the client API answers 429 to a client without `monthly_attempts`: the bench client gets a quota of 10^9 from a
  `clients.toml` written at start;
- `POST /_worker/tasks/result` answers 400 to every real request (the worker auth middleware reads the body of a
  `request.clone()`, which consumes the shared stream): `Request.clone()` without arguments returns the request
  itself here, so the body is read once and cached;
- without OpenTelemetry installed every step fails (`executor.py` instantiates its no-op propagator, then calls
  the instance, and never defines `tracer`): the propagator is set back to its class and `tracer` to the no-op
  (installing OpenTelemetry instead would make 1.0b4 print every span to the console, its default exporter);
- the worker rate limit (5 requests per 60 s, TTL reset on every hit) blocks any worker after its 5th request:
  `RATE_LIMITING_ENABLED=false`.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from typing import Any

if "avtomatika" in sys.modules or os.path.exists(os.path.join(os.getcwd(), "avtomatika", "engine.py")):
    raise SystemExit("original_app: run from a directory outside the repository (it must import the original)")

from aiohttp import web  # noqa: E402

from avtomatika import OrchestratorEngine, StateMachineBlueprint  # noqa: E402
from avtomatika.config import Config  # noqa: E402
from avtomatika.storage import MemoryStorage  # noqa: E402

BENCH_TOKEN = os.environ.get("BENCH_CLIENT_TOKEN", "bench-client-token-0123456789abcdef")
BENCH_WORKER_TOKEN = os.environ.get("BENCH_WORKER_TOKEN", "bench-worker-token-0123456789abcdef")

_clone = web.Request.clone


def _clone_keeping_body(self: web.Request, **changes: Any) -> web.Request:
    return self if not changes else _clone(self, **changes)


web.Request.clone = _clone_keeping_body  # type: ignore[method-assign]

import avtomatika.executor as _executor  # noqa: E402

if not callable(_executor.TraceContextTextMapPropagator):
    _executor.TraceContextTextMapPropagator = type(_executor.TraceContextTextMapPropagator)
if not hasattr(_executor, "tracer"):
    _executor.tracer = _executor.trace

linear = StateMachineBlueprint("linear", api_version="v1", api_endpoint="jobs/linear")


@linear.handler_for("start", is_start=True)
async def start(actions: Any, state_history: Any) -> None:
    state_history["visited"] = ["start"]
    actions.transition_to("prepare")


@linear.handler_for("prepare")
async def prepare(actions: Any, state_history: Any) -> None:
    state_history["visited"].append("prepare")
    actions.transition_to("process")


@linear.handler_for("process")
async def process(actions: Any, state_history: Any, initial_data: Any) -> None:
    state_history["visited"].append("process")
    state_history["doubled"] = initial_data.get("value", 0) * 2
    actions.transition_to("publish")


@linear.handler_for("publish")
async def publish(actions: Any, state_history: Any) -> None:
    state_history["visited"].append("publish")
    actions.transition_to("done")


@linear.handler_for("done", is_end=True)
async def done(actions: Any, state_history: Any) -> None:
    state_history["visited"].append("done")
    actions.transition_to("finished")  # 1.0b4 ends a job only on a move to a terminal state (`finished`)


def _dispatching(name: str) -> StateMachineBlueprint:
    blueprint = StateMachineBlueprint(name, api_version="v1", api_endpoint=f"jobs/{name}")

    @blueprint.handler_for("start", is_start=True)
    async def dispatch(initial_data: Any, actions: Any) -> None:
        value = initial_data.get("value", 0) if isinstance(initial_data, dict) else 0
        actions.dispatch_task(name, {"value": value}, {"success": "finished"})

    @blueprint.handler_for("finished", is_end=True)
    async def finished(state_history: Any) -> None:
        pass

    return blueprint


def build() -> OrchestratorEngine:
    clients = os.path.join(tempfile.mkdtemp(prefix="original-1.0b4-"), "clients.toml")
    with open(clients, "w") as handle:
        handle.write(f'[bench]\ntoken = "{BENCH_TOKEN}"\nplan = "bench"\nmonthly_attempts = 1000000000\n')
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("RATE_LIMITING_ENABLED", "false")
    os.environ["CLIENTS_CONFIG_PATH"] = clients
    config = Config()
    config.CLIENT_TOKEN = BENCH_TOKEN
    config.GLOBAL_WORKER_TOKEN = BENCH_WORKER_TOKEN
    url = os.environ.get("REDIS_URL", "")
    storage: Any
    if url:
        from redis.asyncio import Redis

        from avtomatika.storage.redis import RedisStorage

        storage = RedisStorage(Redis.from_url(url))
    else:
        storage = MemoryStorage()
    engine = OrchestratorEngine(storage, config)
    engine.register_blueprint(linear)
    engine.register_blueprint(_dispatching("bench_echo"))
    engine.register_blueprint(_dispatching("bench_parked"))
    # 1.0b4 sets the root logger to DEBUG with a stdout handler (an INFO line per state change and request);
    # the bench keeps it at WARNING, as this project's bench processes are.
    logging.getLogger().setLevel(logging.WARNING)
    return engine


if __name__ == "__main__":
    build().run()
