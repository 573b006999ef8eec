"""Scenarios W1 and W2: one HTTP-worker task per job, Redis mode.

W1  `bench_echo` jobs (start -> dispatch_task("bench_echo") -> success -> finished), N at K in flight,
    served by `--workers` HTTP workers (one process, `bench/http_workers.py`: long-poll, result, loop).
W2  the same, in a fresh topology where `--parked` jobs already wait for task type `bench_parked`, which no
    worker serves (created through the API first); the rate must stay that of W1.

Topology: `driver.redis_topology` (redis-server, one API process `gunicorn -k gevent -w 1`, one Celery worker
process) loading `bench.apps.worker_app:engine`, plus the HTTP-worker process, whose CPU is its own role
(`http_workers`). Latency per job: create request -> the job GET that shows `finished` (driver.drive_jobs).

    .venv/bin/python -m bench.w1_workers                       # W1 then W2: N=2000, K=64, 8 workers, 10,000 parked
    .venv/bin/python -m bench.w1_workers --modes w1 --profile  # py-spy the API, the Celery worker, the HTTP workers
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.clients import make_lanes
from bench.driver import RESULTS, JobsRun, Topology, format_table, redis_topology, run_jobs, write_result
from bench.http_workers import REQUEST_ERRORS
from bench.procs import BIN, ROOT, Service, wait_until

SCENARIO_APP = "bench.apps.worker_app:engine"
ECHO_PATH = "/api/v1/jobs/bench_echo"
PARKED_PATH = "/api/v1/jobs/bench_parked"
TARGET = {"jobs_per_s": 300}
MODES = ("w1", "w2")
PREFIX = "avtomatika"  # REDIS_KEY_PREFIX default


# -- parked jobs (W2 background, W3) --------------------------------------------------------------------------


async def create_jobs(base: str, path: str, n: int, lanes: int = 32, time_limit: float = 300.0) -> dict[str, Any]:
    """POST `n` jobs to `path` with `lanes` connections in parallel (no polling); returns counts and the rate."""
    from bench.apps.worker_app import BENCH_TOKEN

    loop = asyncio.get_running_loop()
    deadline = loop.time() + time_limit
    statuses: Counter[str] = Counter()
    next_index = 0

    async def lane(http: Any) -> None:
        nonlocal next_index
        while next_index < n and loop.time() < deadline:
            index, next_index = next_index, next_index + 1
            try:
                status, _ = await asyncio.wait_for(http.request("POST", path, {"value": index}), 30)
                statuses[str(status)] += 1
            except REQUEST_ERRORS as exc:
                statuses[type(exc).__name__] += 1

    clients = make_lanes("raw", base, {"X-Avtomatika-Token": BENCH_TOKEN}, lanes)
    began = time.perf_counter()
    try:
        await asyncio.gather(*(lane(http) for http in clients))
    finally:
        for http in clients:
            await http.close()
    wall = time.perf_counter() - began
    return {"created": statuses.get("202", 0), "statuses": dict(statuses), "wall_s": round(wall, 2),
            "per_s": round(statuses.get("202", 0) / wall, 1)}  # fmt: skip


def queued(client: Any, task_type: str) -> int:
    """Tasks waiting in every requirement-class queue of `task_type` (RedisStorage layout)."""
    queues = client.hkeys(f"{PREFIX}:classes:{task_type}")
    return sum(int(client.zcard(f"{PREFIX}:queue:{q.decode()}")) for q in queues)


def park_jobs(topology: Topology, n: int, *, lanes: int = 32, time_limit: float = 300.0) -> dict[str, Any]:
    """Create `n` `bench_parked` jobs through the API and wait until all their tasks wait in the queue."""
    import redis

    from bench.apps.worker_app import PARKED_TYPE

    client = redis.Redis.from_url(topology.redis_url)
    try:
        before = queued(client, PARKED_TYPE)
        created = asyncio.run(create_jobs(topology.base, PARKED_PATH, n, lanes, time_limit))
        if created["created"] != n:
            raise RuntimeError(f"parking failed: {created}")

        def settled() -> bool:
            return queued(client, PARKED_TYPE) - before >= n and client.llen("avtomatika.steps") == 0

        began = time.perf_counter()
        wait_until(settled, time_limit, f"{n} parked tasks in the queue", interval=0.2)
        created["queued"] = queued(client, PARKED_TYPE)
        created["settle_s"] = round(time.perf_counter() - began, 2)
        return created
    finally:
        client.close()


# -- HTTP workers ---------------------------------------------------------------------------------------------


def start_http_workers(
    topology: Topology, logdir: Path, count: int, stats_path: Path, types: str = "", prefix: str = "", result: str = ""
) -> Service:
    """The HTTP-worker process (`bench.http_workers`), registered and polling when this returns."""
    from bench.procs import service_env

    args = [str(BIN / "python"), "-m", "bench.http_workers", "--base", topology.base, "--count", str(count),
            "--stats", str(stats_path), "--time-limit", "900"]  # fmt: skip
    args += ["--types", types] if types else []
    args += ["--prefix", prefix] if prefix else []
    args += ["--result", result] if result else []
    service = Service("http_workers", args, service_env(), logdir)

    def ready() -> bool:
        service.check()
        return "ready " in service.output()

    wait_until(ready, 60, "HTTP workers")
    return service


# -- side measurements ----------------------------------------------------------------------------------------


def command_calls(redis_url: str) -> dict[str, int]:
    """Calls per Redis command since the server started (INFO commandstats)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def get_cost(topology: Topology, requests: int = 2000, lanes: int = 8) -> dict[str, Any]:
    """API CPU of one job GET (the driver's poll): `requests` GETs of one finished job, `lanes` at a time."""
    from bench.apps.worker_app import BENCH_TOKEN
    from bench.procs import CpuMeter

    async def run() -> tuple[int, float]:
        clients = make_lanes("raw", topology.base, {"X-Avtomatika-Token": BENCH_TOKEN}, lanes)
        try:
            status, answer = await clients[0].request("POST", ECHO_PATH, {"value": -1})
            path = f"/api/v1/jobs/{answer['job_id']}"
            for _ in range(200):  # bounded: 10 s
                status, view = await clients[0].request("GET", path)
                if view.get("status") == "finished":
                    break
                await asyncio.sleep(0.05)
            meter.start()
            began = time.perf_counter()
            counts = await asyncio.gather(*(one_lane(http, path) for http in clients))
            wall = time.perf_counter() - began
            meter.stop()
            return sum(counts), wall
        finally:
            for http in clients:
                await http.close()

    async def one_lane(http: Any, path: str) -> int:
        ok = 0
        for _ in range(requests // lanes):
            status, _ = await http.request("GET", path)
            ok += status == 200
        return ok

    meter = CpuMeter({"api": topology.roles["api"]})
    ok, wall = asyncio.run(run())
    report = meter.report(ok)
    return {"requests": ok, "per_s": round(ok / wall, 1), "api_ms_per_get": report["api"]["ms_per_unit"]}


# -- one mode -------------------------------------------------------------------------------------------------


def run_mode(mode: str, args: argparse.Namespace, logdir: Path) -> dict[str, Any]:
    stats_path = logdir / f"{mode}-http-workers.json"
    with redis_topology(
        logdir, pool=args.pool, concurrency=args.concurrency, worker_loglevel=args.worker_loglevel,
        app=SCENARIO_APP, experiments=args.experiments, worker_events=args.worker_events,
    ) as topology:  # fmt: skip
        parked = park_jobs(topology, args.parked, time_limit=args.time_limit) if mode == "w2" else None
        if parked:
            print(f"{mode}: parked {parked}", flush=True)
        workers = start_http_workers(topology, logdir, args.workers, stats_path)
        topology.services.append(workers)
        topology.roles["http_workers"] = workers.pid
        run = JobsRun(
            mode, ECHO_PATH, args.n, args.k, args.warmup, args.poll_first, args.poll_interval,
            time_limit=args.time_limit, quiet_wait=args.quiet_wait, client=args.client, profile=args.profile,
        )  # fmt: skip
        calls_before = command_calls(topology.redis_url)
        result = run_jobs(topology, run)
        calls_after = command_calls(topology.redis_url)
        workers.stop()
        result["get_cost"] = get_cost(topology)
    # Redis calls per job: warm-up and measured jobs both ran between the two readings
    jobs = args.warmup + result["completed"]
    calls = {c: round((n - calls_before.get(c, 0)) / jobs, 2) for c, n in calls_after.items()
             if n - calls_before.get(c, 0) >= jobs / 100}  # fmt: skip
    result["redis_calls_per_job"] = dict(sorted(calls.items(), key=lambda kv: -kv[1]))
    result["redis_calls_per_job"]["total"] = round(sum(calls.values()), 2)
    gets = result["polls"] / max(result["completed"], 1)
    api = result["cpu"]["api"]["ms_per_unit"]
    result["api_ms_per_job_one_get"] = round(api - (gets - 1) * result["get_cost"]["api_ms_per_get"], 3)
    result["params"].update(http_workers=args.workers, parked=args.parked if mode == "w2" else 0)
    if parked:
        result["parked"] = parked
    try:
        result["http_workers"] = json.loads(stats_path.read_text())
    except (OSError, ValueError):
        result["http_workers"] = {"error": "no stats written"}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=2000, help="jobs to measure")
    parser.add_argument("-k", type=int, default=64, help="jobs in flight")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--workers", type=int, default=8, help="HTTP workers (one process)")
    parser.add_argument("--parked", type=int, default=10_000, help="W2: jobs waiting for an unserved task type")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}")
    parser.add_argument("--client", choices=["httpx", "raw"], default="raw", help="HTTP client of the job driver")
    parser.add_argument("--pool", default="threads")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--worker-loglevel", default="WARNING")
    parser.add_argument("--worker-events", action="store_true",
                        help="start the Celery worker with -E (off by default, as CELERY_TASK_EVENTS)")  # fmt: skip
    # A W1 job takes two step tasks and a worker round trip; polling it every 20 ms as S1 does makes the job
    # GETs most of the API's work (see README). 150 ms, then every 50 ms (64 in flight / 150 ms = 427 jobs/s at most).
    parser.add_argument("--poll-first", type=float, default=0.15, help="seconds before a job's first GET")
    parser.add_argument("--poll-interval", type=float, default=0.05, help="seconds between a job's GETs")
    parser.add_argument("--time-limit", type=float, default=300, help="seconds each measured phase may take")
    parser.add_argument("--quiet-wait", type=float, default=60, help="wait up to this long for an idle machine")
    parser.add_argument("--profile", action="store_true", help="py-spy every role during the measured phase")
    parser.add_argument("--experiments", default="", help="BENCH_EXPERIMENTS (see bench/apps/bench_app.py)")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if set(modes) - set(MODES):
        parser.error(f"unknown modes {sorted(set(modes) - set(MODES))}")

    logdir = RESULTS / "logs" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    logdir.mkdir(parents=True, exist_ok=True)
    results = []
    for mode in modes:
        result = run_mode(mode, args, logdir)
        results.append(result)
        latency = result["latency_ms"]
        print(f"{mode}: {result['per_s']} jobs/s, p50/p99 {latency['p50']}/{latency['p99']} ms "
              f"(server-stamped finish {result['finish_ms']}), http workers {result['http_workers']}, "
              f"API ms per job GET {result['get_cost']['api_ms_per_get']} -> API ms/job with one GET per job "
              f"{result['api_ms_per_job_one_get']}; Redis calls per job {result['redis_calls_per_job']} "
              f"-> {write_result(result).relative_to(ROOT)}", flush=True)  # fmt: skip

    print()
    print(format_table(results))
    for result in results:
        met = result["per_s"] >= TARGET["jobs_per_s"]
        print(f"target (>= {TARGET['jobs_per_s']} jobs/s) in {result['scenario']}: {'met' if met else 'not met'}")
    rates = {r["scenario"]: r["per_s"] for r in results}
    if "w1" in rates and "w2" in rates and rates["w1"]:
        print(f"W2/W1 rate: {rates['w2']} / {rates['w1']} jobs/s = {rates['w2'] / rates['w1']:.2f}")
    summary = RESULTS / f"w1-summary-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    summary.write_text(json.dumps({"target": TARGET, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
