"""HTTP workers for the worker benchmarks: bare protocol clients (SPEC §4) on the raw asyncio client.

Each worker registers, then loops: long-poll `GET /_worker/workers/{id}/tasks/next`; on 200 post the result
(`POST /_worker/tasks/result`, status success, the params echoed as data) and poll again; on 204 poll again.
One keep-alive connection per worker (`clients.RawLane`), 127.0.0.1 only.

`run_worker` is used in-process by W4 (2,000 workers in the driver); as a program it runs `--count` workers
in their own process, so their CPU is accounted apart from the driver's (W1, W2):

    .venv/bin/python -m bench.http_workers --base http://127.0.0.1:8080 --count 8 --stats /tmp/stats.json

It prints `ready <count>` once every worker is registered, runs until SIGTERM/SIGINT or `--time-limit`, then
writes its counters as JSON to `--stats`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.clients import CLIENT_ERRORS, RawLane

# What a request may raise that a worker (or a driver) counts instead of stopping: a client error or a timeout.
REQUEST_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, *CLIENT_ERRORS)


@dataclass
class WorkerStats:
    """Counters shared by the workers of one process."""

    registered: int = 0
    polls: int = 0
    tasks: int = 0
    empty_polls: int = 0  # 204: the long-poll timed out
    results: Counter[str] = field(default_factory=Counter)  # answer status of each result
    heartbeats: Counter[str] = field(default_factory=Counter)  # answer status of each heartbeat (--sdk)
    errors: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "registered": self.registered,
            "polls": self.polls,
            "tasks": self.tasks,
            "empty_polls": self.empty_polls,
            "results": dict(self.results),
            "heartbeats": dict(self.heartbeats),
            "errors": dict(self.errors),
        }


# What a worker answers for a task's params: the params echoed, or a thumbnail's path (blueprints/fanout.py).
RESULTS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "echo": lambda params: {"echo": params},
    "thumbnail": lambda params: {"path": f"/t/{params.get('frame')}.jpg"},
}

HEARTBEAT_SECONDS = 20.0  # the original SDK's (avtomatika-worker 1.0b3) default heartbeat interval


def sdk_registration(worker_id: str, task_types: list[str]) -> dict[str, Any]:
    """The registration body the original SDK (avtomatika-worker 1.0b3) sends, with its fields."""
    return {
        "worker_id": worker_id,
        "worker_type": "cpu",
        "supported_tasks": task_types,
        "max_concurrent_tasks": 1,
        "cost_per_skill": {},
        "installed_models": [],
        "hostname": "bench",
        "ip_address": "127.0.0.1",
        "resources": {"max_concurrent_tasks": 1, "cpu_cores": 1, "gpu_info": None},
    }


def sdk_heartbeat(task_types: list[str]) -> dict[str, Any]:
    """The heartbeat body of the original SDK (PATCH /_worker/workers/{id})."""
    return {"load": 0.0, "status": "idle", "supported_tasks": task_types, "hot_cache": []}


async def heartbeats(base: str, headers: dict[str, str], worker_id: str, task_types: list[str], stats: WorkerStats,
                     stop: asyncio.Event) -> None:  # fmt: skip
    """PATCH a heartbeat every HEARTBEAT_SECONDS on a connection of its own, as the original SDK does."""
    lane = RawLane(base, headers)
    try:
        while True:
            try:
                await asyncio.wait_for(stop.wait(), HEARTBEAT_SECONDS)
                return
            except TimeoutError:
                pass
            try:
                status, _ = await asyncio.wait_for(
                    lane.request("PATCH", f"/_worker/workers/{worker_id}", sdk_heartbeat(task_types)), 30
                )
                stats.heartbeats[str(status)] += 1
            except REQUEST_ERRORS as exc:
                stats.errors[f"heartbeat {type(exc).__name__}"] += 1
                await lane.close()
    finally:
        await lane.close()


async def register(lane: RawLane, worker_id: str, task_types: list[str], stats: WorkerStats, sdk: bool = False) -> bool:
    body = sdk_registration(worker_id, task_types) if sdk else {"worker_id": worker_id, "supported_tasks": task_types}
    status, answer = await asyncio.wait_for(lane.request("POST", "/_worker/workers/register", body), 30)
    if status != 200:
        stats.errors[f"register {status}"] += 1
        return False
    stats.registered += 1
    return True


async def run_worker(
    lane: RawLane,
    worker_id: str,
    stats: WorkerStats,
    stop: asyncio.Event,
    *,
    deadline: float,
    request_timeout: float = 90.0,
    on_task: Callable[[dict[str, Any], float], None] | None = None,
    on_poll: Callable[[str], None] | None = None,
    result_data: Callable[[dict[str, Any]], dict[str, Any]] = lambda params: {"echo": params},
) -> None:
    """Poll and answer tasks until `stop` is set or the loop time passes `deadline` (the worker is registered).

    `result_data(params)`: the data of each result (the params echoed by default). `on_task(task, received)`
    runs when a poll answers a task (`received` = time.perf_counter()); `on_poll(worker_id)` just before each
    poll request is sent.
    """
    loop = asyncio.get_running_loop()
    poll_path = f"/_worker/workers/{worker_id}/tasks/next"
    while not stop.is_set() and loop.time() < deadline:
        if on_poll is not None:
            on_poll(worker_id)
        try:
            status, task = await asyncio.wait_for(lane.request("GET", poll_path), request_timeout)
        except REQUEST_ERRORS as exc:
            stats.errors[f"poll {type(exc).__name__}"] += 1
            await lane.close()
            await asyncio.sleep(0.1)
            continue
        stats.polls += 1
        if status == 204:
            stats.empty_polls += 1
            continue
        if status != 200 or not isinstance(task, dict):
            stats.errors[f"poll {status}"] += 1
            await asyncio.sleep(0.1)
            continue
        stats.tasks += 1
        if on_task is not None:
            on_task(task, time.perf_counter())
        body = {
            "job_id": task["job_id"],
            "task_id": task["task_id"],
            "worker_id": worker_id,
            "result": {"status": "success", "data": result_data(task.get("params") or {})},
        }
        try:
            status, answer = await asyncio.wait_for(lane.request("POST", "/_worker/tasks/result", body), 30)
        except REQUEST_ERRORS as exc:
            stats.errors[f"result {type(exc).__name__}"] += 1
            await lane.close()
            continue
        stats.results[str(answer.get("status")) if status == 200 and isinstance(answer, dict) else str(status)] += 1


async def serve(
    base: str,
    count: int,
    task_types: list[str],
    token: str,
    time_limit: float,
    prefix: str,
    sdk: bool = False,
    result: str = "echo",
) -> WorkerStats:
    """Register `count` workers and run them until SIGTERM/SIGINT or `time_limit` seconds.

    With `sdk` the workers behave like the original SDK's: its registration fields and a heartbeat every 20 s.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    deadline = loop.time() + time_limit
    stats = WorkerStats()
    headers = {"X-Worker-Token": token}
    workers = [(f"{prefix}-{i:04d}", RawLane(base, headers)) for i in range(count)]
    registered = await asyncio.gather(*(register(lane, wid, task_types, stats, sdk) for wid, lane in workers))
    if not all(registered):
        raise SystemExit(f"registration failed: {dict(stats.errors)}")
    print(f"ready {count}", flush=True)
    data = RESULTS[result]
    tasks = [
        asyncio.ensure_future(run_worker(lane, wid, stats, stop, deadline=deadline, result_data=data))
        for wid, lane in workers
    ]
    if sdk:
        tasks += [asyncio.ensure_future(heartbeats(base, headers, wid, task_types, stats, stop)) for wid, _ in workers]
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait([stopper, *tasks], timeout=max(deadline - loop.time(), 0), return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    for task in tasks:
        task.cancel()  # most are inside a long-poll
    await asyncio.gather(*tasks, return_exceptions=True)
    stopper.cancel()
    for _, lane in workers:
        await lane.close()
    return stats


def main(argv: list[str] | None = None) -> int:
    from bench.apps.worker_app import BENCH_WORKER_TOKEN, ECHO_TYPE

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="API base URL (http://127.0.0.1:<port>)")
    parser.add_argument("--count", type=int, default=8, help="workers (one connection each)")
    parser.add_argument("--types", default=ECHO_TYPE, help="comma-separated supported task types")
    parser.add_argument("--token", default=BENCH_WORKER_TOKEN)
    parser.add_argument("--prefix", default="bench-w", help="worker id prefix")
    parser.add_argument("--time-limit", type=float, default=900, help="seconds before the workers stop by themselves")
    parser.add_argument("--stats", default="", help="write the counters as JSON to this file at the end")
    parser.add_argument("--sdk", action="store_true", help="register and heartbeat (20 s) as the original SDK does")
    parser.add_argument("--result", choices=sorted(RESULTS), default="echo", help="what each result's data is")
    args = parser.parse_args(argv)
    types = [t.strip() for t in args.types.split(",") if t.strip()]
    stats = asyncio.run(
        serve(args.base, args.count, types, args.token, args.time_limit, args.prefix, args.sdk, args.result)
    )
    text = json.dumps(stats.as_dict())
    print(f"stats {text}", flush=True)
    if args.stats:
        with open(args.stats, "w") as handle:
            handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
