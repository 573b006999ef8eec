"""The original 1.0b4 and this project side by side, in one run, back to back; prints the ratios.

    .venv/bin/python -m bench.compare                     # every scenario (~6 min; builds the original's venv once)
    .venv/bin/python -m bench.compare --scenarios s1-memory -n 1000

Scenarios (each pair runs in fresh processes, the original first, then ours):
  s1-memory        S1 (5-state linear, K in flight) through `engine.run()` on MemoryStorage; then the embedded
                   default's parts with no HTTP server (`bench/embedded_floor.py`): a bare Flask app's two
                   requests, the engine alone, this project's Flask app and the engine
  s1-seed-redis    S1 through `engine.run()` with Redis
  s1-production    S1 on this project's production topology (gunicorn gevent API, 2 workers as in
                   deploy/gunicorn.conf.py; one Celery worker, threads -c 4; redis-server)
                   against the original's `engine.run()` with Redis (1.0b4 has no other topology)
  s2-seed-redis    S2: one HTTP-worker task per job, 8 workers that behave like the original SDK's (its
                   registration fields, long-poll `tasks/next` with the server's default timeout, a result per
                   task, a heartbeat every 20 s), through `engine.run()` with Redis
  s2-production    S2 on the production topology against the original's `engine.run()` with Redis
  w3-size          Redis `used_memory_dataset` growth per job waiting for a worker (`--parked` jobs of the same
                   blueprint on each side; 1.0b4's tasks wait in the queue of a registered worker that never polls)
The original's figures of `s1-seed-redis` / `s2-seed-redis` are reused for the production rows when both run.

Jobs are followed with the raw driver client: this project's jobs with `GET /api/v1/jobs/{id}?wait=30` (one GET
per job), the original's by polling, as 1.0b4 has no wait: in memory first GET after 30 ms then every 20 ms; on
Redis after 300 ms then every 300 ms (`--original-poll`, `--original-poll-s2`). Polled faster, 1.0b4 on Redis
collapses: each GET costs it a client-config read, a quota script (loaded again on every request) and the job
read in the one process that also runs the steps, so 64 lanes polling every 20 ms left it 14 jobs/s at
41 GETs per job (147 jobs/s at 300/300 ms, 1.2 GETs per job, same machine).
CPU per job counts the system under test (every process of the topology, redis-server included), not the driver
or the HTTP workers. A JSON summary goes to bench/results/compare-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx

from bench import embedded_floor
from bench.driver import RESULTS, JobsRun, Topology, redis_topology, run_jobs, write_result
from bench.original import original_ended, original_python, original_topology, seed_topology
from bench.procs import BIN, Service, service_env, wait_until

S1_PATH = "/api/v1/jobs/linear"
S2_PATH = "/api/v1/jobs/bench_echo"
WORKER_APP = "bench.apps.worker_app"
SCENARIOS = ("s1-memory", "s1-seed-redis", "s1-production", "s2-seed-redis", "s2-production", "w3-size")
NOT_SUT = ("driver", "http_workers", "total", "machine")


def start_sdk_workers(topology: Topology, logdir: Path, count: int, label: str) -> Service:
    """`count` HTTP workers behaving like the original SDK's, in their own process; registered when this returns."""
    args = [str(BIN / "python"), "-m", "bench.http_workers", "--base", topology.base, "--count", str(count),
            "--sdk", "--stats", str(logdir / f"{label}-http-workers.json"), "--time-limit", "900"]  # fmt: skip
    service = Service(f"http_workers-{label}", args, service_env(), logdir)

    def ready() -> bool:
        service.check()
        return "ready " in service.output()

    wait_until(ready, 60, "HTTP workers")
    return service


def redis_calls(url: str) -> dict[str, int]:
    """Calls per command Redis has run since it started (INFO commandstats; commands inside Lua scripts count)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in client.info("commandstats").items()}
    finally:
        client.close()


def measure(
    label: str, topology_cm: AbstractContextManager[Topology], run: JobsRun, logdir: Path, workers: int = 0
) -> dict[str, Any]:
    """One measured phase on a fresh topology; with `workers`, SDK-like HTTP workers serve the tasks."""
    with topology_cm as topology:
        if workers:
            service = start_sdk_workers(topology, logdir, workers, label)
            topology.services.append(service)
            topology.roles["http_workers"] = service.pid
        calls = redis_calls(topology.redis_url) if topology.redis_url else {}
        result = run_jobs(topology, run)
        if topology.redis_url:
            jobs = max(run.warmup + result["completed"], 1)
            after = redis_calls(topology.redis_url)
            per_command = {c: round((n - calls.get(c, 0)) / jobs, 2) for c, n in after.items() if n > calls.get(c, 0)}
            result["redis_commands_per_job"] = dict(sorted(per_command.items(), key=lambda kv: -kv[1]))
            result["redis_calls_per_job"] = round(sum(per_command.values()), 1)
    result["label"] = label
    result["sut_ms_per_job"] = round(
        sum(v["ms_per_unit"] for role, v in result["cpu"].items() if role not in NOT_SUT), 3
    )
    print(f"{label}: {result['per_s']} jobs/s, p50/p99 {result['latency_ms']['p50']}/{result['latency_ms']['p99']} ms,"
          f" {result['sut_ms_per_job']} ms CPU/job, errors {result['errors']} -> {write_result(result).name}",
          flush=True)  # fmt: skip
    return result


def parked_size(topology: Topology, n: int, warmup: int, original: bool, time_limit: float) -> dict[str, Any]:
    """Redis `used_memory_dataset` growth per job waiting for a worker: `n` `bench_parked` jobs after `warmup`.

    1.0b4 dispatches only to a registered worker that supports the type, so for it one worker registers (with the
    original SDK's fields) and never polls; its tasks wait in that worker's queue. Ours need no worker.
    """
    import asyncio

    import redis

    from bench.http_workers import sdk_registration
    from bench.w1_workers import create_jobs

    client = redis.Redis.from_url(topology.redis_url)
    step_queue = "orchestrator:job_queue" if original else "avtomatika.steps"

    from bench.apps.bench_app import BENCH_WORKER_TOKEN
    from bench.http_workers import HEARTBEAT_SECONDS, sdk_heartbeat

    headers = {"X-Worker-Token": BENCH_WORKER_TOKEN}
    stop = threading.Event()

    def parking_worker() -> None:
        """Register a worker for `bench_parked` that never polls, with a heartbeat every 20 s as the SDK's: 1.0b4
        forgets a worker after 120 s, and its dispatch then fails ("No available workers")."""
        with httpx.Client(base_url=topology.base, headers=headers, timeout=30) as http:
            answer = http.post("/_worker/workers/register", json=sdk_registration("parking-worker", ["bench_parked"]))
            assert answer.status_code == 200, answer.text
            registered.set()
            while not stop.wait(HEARTBEAT_SECONDS):
                http.patch("/_worker/workers/parking-worker", json=sdk_heartbeat(["bench_parked"]))

    registered = threading.Event()
    heartbeat = threading.Thread(target=parking_worker, daemon=True)

    def settle() -> int:
        last, stable_since = -1, time.monotonic()
        # 1.0b4 dispatches ~10 parked tasks a second once thousands are parked (each dispatch scans the keyspace)
        deadline = time.monotonic() + max(time_limit, 1200)
        while time.monotonic() < deadline:
            used = int(client.info("memory")["used_memory_dataset"])
            if used != last or client.llen(step_queue):
                last, stable_since = used, time.monotonic()
            elif time.monotonic() - stable_since > 2:
                return used
            time.sleep(0.2)
        raise RuntimeError("Redis memory did not settle")

    try:
        if original:
            heartbeat.start()
            if not registered.wait(30):
                raise RuntimeError("the parking worker did not register")
        asyncio.run(create_jobs(topology.base, "/api/v1/jobs/bench_parked", warmup, 16, time_limit))
        before = settle()
        created = asyncio.run(create_jobs(topology.base, "/api/v1/jobs/bench_parked", n, 32, time_limit))
        after = settle()
    finally:
        stop.set()
        client.close()
    if created["created"] != n:
        raise RuntimeError(f"parking failed: {created}")
    return {"jobs": n, "bytes_per_job": round((after - before) / n), "creates_per_s": created["per_s"]}


def format_comparison(rows: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> str:
    """One line per scenario: the original's figures, ours, and the ratios (>1: ours is better)."""
    head = ["scenario", "original jobs/s", "ours jobs/s", "ratio", "original CPU ms/job", "ours CPU ms/job",
            "CPU ratio", "original p50/p99 ms", "ours p50/p99 ms", "Redis cmds/job orig/ours",
            "other cores"]  # fmt: skip
    table = [head]
    for name, orig, ours in rows:
        ratio = ours["per_s"] / orig["per_s"] if orig["per_s"] else float("inf")
        cpu_ratio = orig["sut_ms_per_job"] / ours["sut_ms_per_job"] if ours["sut_ms_per_job"] else float("inf")
        calls = f"{orig.get('redis_calls_per_job', '-')} / {ours.get('redis_calls_per_job', '-')}"
        other = f"{orig['cpu']['machine']['other_cores']:.2f} / {ours['cpu']['machine']['other_cores']:.2f}"
        table.append([
            name, f"{orig['per_s']:.0f}", f"{ours['per_s']:.0f}", f"{ratio:.2f}x", f"{orig['sut_ms_per_job']:.2f}",
            f"{ours['sut_ms_per_job']:.2f}", f"{cpu_ratio:.2f}x",
            f"{orig['latency_ms']['p50']:.0f} / {orig['latency_ms']['p99']:.0f}",
            f"{ours['latency_ms']['p50']:.0f} / {ours['latency_ms']['p99']:.0f}", calls, other,
        ])  # fmt: skip
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |" for row in table]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _pair(text: str) -> tuple[float, float]:
    first, _, every = text.partition(",")
    return float(first), float(every or first)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"subset of {','.join(SCENARIOS)}")
    parser.add_argument("-n", type=int, default=3000, help="S1 jobs measured per side")
    parser.add_argument("--n2", type=int, default=2000, help="S2 jobs measured per side")
    parser.add_argument("-k", type=int, default=64, help="jobs in flight")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--workers", type=int, default=8, help="S2: SDK-like HTTP workers")
    parser.add_argument("--parked", type=int, default=5000, help="W3: jobs parked per side")
    parser.add_argument("--api-workers", type=int, default=2,
                        help="production topology: gunicorn gevent workers (deploy/gunicorn.conf.py: 2)")  # fmt: skip
    parser.add_argument("--pool", default="threads", help="production topology: Celery pool")
    parser.add_argument("--concurrency", type=int, default=4, help="production topology: Celery concurrency")
    parser.add_argument("--time-limit", type=float, default=300, help="seconds each measured phase may take")
    parser.add_argument("--quiet-wait", type=float, default=60, help="wait up to this long for an idle machine")
    parser.add_argument(
        "--original-poll",
        type=_pair,
        default=(0.3, 0.3),
        help="S1 on Redis: the original's first GET after, then every (seconds)",
    )
    parser.add_argument(
        "--original-poll-s2",
        type=_pair,
        default=(0.3, 0.3),
        help="S2: the original's first GET after, then every (seconds)",
    )
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if set(chosen) - set(SCENARIOS):
        parser.error(f"unknown scenarios {sorted(set(chosen) - set(SCENARIOS))}")
    original_python()  # build the original's virtualenv before anything is timed

    logdir = RESULTS / "logs" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    logdir.mkdir(parents=True, exist_ok=True)

    def jobs(scenario: str, path: str, n: int, original: bool, redis: bool = True) -> JobsRun:
        first, interval = (
            (0.03, 0.02) if not redis else args.original_poll_s2 if scenario == "s2" else args.original_poll
        )
        return JobsRun(
            scenario, path, n, args.k, args.warmup, poll_first=first, poll_interval=interval,
            wait=0.0 if original else 30.0, time_limit=args.time_limit, quiet_wait=args.quiet_wait, client="raw",
            ended=original_ended if original else None,
        )  # fmt: skip

    def production(app: str) -> AbstractContextManager[Topology]:
        return redis_topology(logdir, pool=args.pool, concurrency=args.concurrency, app=f"{app}:engine",
                              api_workers=args.api_workers)  # fmt: skip

    originals: dict[str, dict[str, Any]] = {}

    def original(key: str, redis: bool, path: str, n: int, workers: int) -> dict[str, Any]:
        if key not in originals:
            scenario = key.split("-")[0]
            originals[key] = measure(f"{key} original", original_topology(logdir, redis=redis),
                                     jobs(scenario, path, n, True, redis), logdir, workers)  # fmt: skip
        return originals[key]

    plan: dict[str, tuple[Callable[[], dict[str, Any]], Callable[[], dict[str, Any]]]] = {
        "s1-memory": (
            lambda: original("s1-memory", False, S1_PATH, args.n, 0),
            lambda: measure("s1-memory ours", seed_topology(logdir, redis=False), jobs("s1", S1_PATH, args.n, False),
                            logdir),
        ),
        "s1-seed-redis": (
            lambda: original("s1-redis", True, S1_PATH, args.n, 0),
            lambda: measure("s1-seed-redis ours", seed_topology(logdir, redis=True),
                            jobs("s1", S1_PATH, args.n, False), logdir),
        ),
        "s1-production": (
            lambda: original("s1-redis", True, S1_PATH, args.n, 0),
            lambda: measure("s1-production ours", production("bench.apps.bench_app"),
                            jobs("s1", S1_PATH, args.n, False), logdir),
        ),
        "s2-seed-redis": (
            lambda: original("s2-redis", True, S2_PATH, args.n2, args.workers),
            lambda: measure("s2-seed-redis ours", seed_topology(logdir, redis=True, app=WORKER_APP),
                            jobs("s2", S2_PATH, args.n2, False), logdir, args.workers),
        ),
        "s2-production": (
            lambda: original("s2-redis", True, S2_PATH, args.n2, args.workers),
            lambda: measure("s2-production ours", production(WORKER_APP), jobs("s2", S2_PATH, args.n2, False),
                            logdir, args.workers),
        ),
    }  # fmt: skip
    rows = []
    for name in chosen:
        if name == "w3-size":
            continue
        run_original, run_ours = plan[name]
        rows.append((name, run_original(), run_ours()))
    size: dict[str, Any] = {}
    if "w3-size" in chosen:
        # 1.0b4's watcher fails a task after WORKER_TIMEOUT_SECONDS (300) waiting, and parking 5,000 jobs in it
        # takes minutes: with the default its first jobs end before the last are parked and memory never settles.
        with original_topology(logdir, redis=True, env_extra={"WORKER_TIMEOUT_SECONDS": "86400"}) as topology:
            size["original"] = parked_size(topology, args.parked, args.warmup, True, args.time_limit)
        with seed_topology(logdir, redis=True, app=WORKER_APP) as topology:
            size["ours"] = parked_size(topology, args.parked, args.warmup, False, args.time_limit)

    floor: dict[str, Any] = {}
    if "s1-memory" in chosen:
        floor = embedded_floor.measure(args.n, args.warmup, args.k)
    if rows:
        print()
        print(format_comparison(rows))
    if floor:
        memory = next((o, u) for name, o, u in rows if name == "s1-memory")
        print()
        print(embedded_floor.summary(floor, memory[0]["sut_ms_per_job"], memory[1]["sut_ms_per_job"]))
    if size:
        o, u = size["original"], size["ours"]
        print(f"\nW3 Redis used_memory_dataset per job waiting for a worker ({o['jobs']} parked): original "
              f"{o['bytes_per_job']} B, ours {u['bytes_per_job']} B (original / ours "
              f"{o['bytes_per_job'] / u['bytes_per_job']:.2f}x);"
              f" creating them: original {o['creates_per_s']} jobs/s, ours {u['creates_per_s']} jobs/s")  # fmt: skip
    summary = RESULTS / f"compare-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    summary.write_text(json.dumps([{"scenario": n, "original": o, "ours": u} for n, o, u in rows]
                                  + ([{"scenario": "w3-size", **size}] if size else [])
                                  + ([{"scenario": "s1-memory-floor", **floor}] if floor else []),
                                  indent=2) + "\n")  # fmt: skip
    print(f"summary: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
