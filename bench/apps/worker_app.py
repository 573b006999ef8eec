"""The engine of the worker benchmarks (W1–W4): `AVTOMATIKA_APP=bench.apps.worker_app:engine`.

It is the bench engine of `bench_app` (same tokens, same experiments) with two more blueprints:

- `bench_echo` (`POST /api/v1/jobs/bench_echo`): start -> dispatch_task("bench_echo") -> success -> finished.
  One worker task per job; the HTTP workers of `bench/http_workers.py` serve it.
- `bench_parked` (`POST /api/v1/jobs/bench_parked`): the same shape for task type `bench_parked`, which no
  worker serves: its jobs wait in the queue (W2's background load, W3's memory per waiting job).
"""

from __future__ import annotations

from typing import Any

from avtomatika import StateMachineBlueprint
from bench.apps.bench_app import BENCH_TOKEN, BENCH_WORKER_TOKEN, engine

__all__ = ["BENCH_TOKEN", "BENCH_WORKER_TOKEN", "ECHO_TYPE", "PARKED_TYPE", "engine"]

ECHO_TYPE = "bench_echo"
PARKED_TYPE = "bench_parked"

bench_echo = StateMachineBlueprint("bench_echo", api_version="v1", api_endpoint="jobs/bench_echo")


@bench_echo.handler_for("start", is_start=True)
def dispatch_echo(initial_data: dict[str, Any], actions: Any) -> None:
    actions.dispatch_task(ECHO_TYPE, {"value": initial_data.get("value", 0)}, {"success": "finished"})


bench_parked = StateMachineBlueprint("bench_parked", api_version="v1", api_endpoint="jobs/bench_parked")


@bench_parked.handler_for("start", is_start=True)
def dispatch_parked(initial_data: dict[str, Any], actions: Any) -> None:
    actions.dispatch_task(PARKED_TYPE, {"value": initial_data.get("value", 0)}, {"success": "finished"})


engine.register_blueprint(bench_echo)
engine.register_blueprint(bench_parked)
