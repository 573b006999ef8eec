"""Scenario W4: one API process holds thousands of idle long-polls; a dispatched task still reaches its worker fast.

A fresh `driver.redis_topology` (bench.apps.worker_app, `WORKER_POLL_TIMEOUT_SECONDS=--poll-timeout`, gunicorn
`--worker-connections` above the number of polls). In this process, `--workers` HTTP workers (bench/http_workers.py
`run_worker`, one raw keep-alive connection each) register and open one long-poll each. Once Redis lists them all
as polling (`pollers:bench_echo`), the API's CPU is read over `--idle` seconds of idle holding; then `--dispatches`
`bench_echo` jobs are created one at a time (`--gap` seconds apart): the latency of each runs from sending the
create request to reading the answer of the poll that received its task. The worker answers the task and polls
again, so every worker keeps one poll open.

Checked on the way: the file-descriptor limits (the driver raises its soft RLIMIT_NOFILE, inherited by every
service, when `2 x workers + 1000` does not fit), the API's open descriptors, Redis `maxclients` and its clients.

    .venv/bin/python -m bench.w4_polls                   # 2,000 polls, 200 dispatches
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

from bench.clients import RawLane
from bench.driver import RESULTS, Topology, percentile, redis_topology
from bench.http_workers import REQUEST_ERRORS, WorkerStats, register, run_worker
from bench.procs import ROOT, CpuMeter, descendants, wait_for_quiet
from bench.w1_workers import ECHO_PATH, PREFIX, SCENARIO_APP

TARGET_P99_MS = 100.0


def raise_fd_limit(needed: int) -> dict[str, int]:
    """Raise this process's soft RLIMIT_NOFILE (inherited by the services it starts) to fit `needed`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = soft
    if soft != resource.RLIM_INFINITY and soft < needed:
        wanted = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return {"soft_before": soft, "hard": hard, "soft": wanted, "needed": needed}


def fd_report(pid: int) -> dict[str, Any]:
    """Open descriptors and `Max open files` of each process in `pid`'s tree."""
    out = {}
    for child in descendants(pid):
        try:
            count = len(os.listdir(f"/proc/{child}/fd"))
            limits = Path(f"/proc/{child}/limits").read_text().splitlines()
        except OSError:
            continue
        line = next((x for x in limits if x.startswith("Max open files")), "")
        out[str(child)] = {"open_fds": count, "max_open_files": line.split()[3] if line else "?"}
    return out


async def measure(topology: Topology, args: argparse.Namespace) -> dict[str, Any]:
    import redis

    from bench.apps.worker_app import BENCH_TOKEN, BENCH_WORKER_TOKEN, ECHO_TYPE

    rds = redis.Redis.from_url(topology.redis_url)
    pollers_key = f"{PREFIX}:pollers:{ECHO_TYPE}"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.time_limit
    stats = WorkerStats()
    stop = asyncio.Event()
    arrivals: dict[str, asyncio.Future[float]] = {}

    def arrival(job_id: str) -> asyncio.Future[float]:
        if job_id not in arrivals:
            arrivals[job_id] = loop.create_future()
        return arrivals[job_id]

    def on_task(task: dict[str, Any], received: float) -> None:
        future = arrival(task["job_id"])
        if not future.done():
            future.set_result(received)

    headers = {"X-Worker-Token": BENCH_WORKER_TOKEN}
    workers = [(f"w4-{i:05d}", RawLane(topology.base, headers)) for i in range(args.workers)]
    out: dict[str, Any] = {}
    tasks: list[asyncio.Task[None]] = []
    creator = RawLane(topology.base, {"X-Avtomatika-Token": BENCH_TOKEN})
    try:
        # 1. each worker registers (64 at a time) and opens its poll at once on the same connection (an idle
        #    keep-alive connection would be closed by gunicorn after its 2 s keep-alive timeout)
        began = time.perf_counter()
        gate = asyncio.Semaphore(64)

        async def worker(worker_id: str, lane: RawLane) -> None:
            async with gate:
                if not await register(lane, worker_id, [ECHO_TYPE], stats):
                    return
            await run_worker(lane, worker_id, stats, stop, deadline=deadline, request_timeout=args.poll_timeout + 30,
                             on_task=on_task)  # fmt: skip

        tasks = [asyncio.create_task(worker(w, lane)) for w, lane in workers]
        while rds.zcard(pollers_key) < args.workers:
            if stats.errors or loop.time() > deadline or time.perf_counter() - began > 120:
                raise RuntimeError(f"only {rds.zcard(pollers_key)} of {args.workers} polls open: {stats.as_dict()}")
            await asyncio.sleep(0.1)
        out["register_and_open_polls_s"] = round(time.perf_counter() - began, 2)
        out["open_polls"] = int(rds.zcard(pollers_key))
        print(f"w4: {out['open_polls']} polls open after {out['register_and_open_polls_s']} s", flush=True)

        # 2. idle holding: what the open polls cost when nothing happens (descriptors and Redis clients at its end)
        meter = CpuMeter(topology.roles)
        meter.start()
        idle_began = time.perf_counter()
        await asyncio.sleep(args.idle)
        meter.stop()
        out["fds_api"] = fd_report(topology.roles["api"])
        out["fds_driver"] = fd_report(os.getpid())
        clients = rds.info("clients")
        out["redis"] = {"maxclients": int(rds.config_get("maxclients")["maxclients"] or 0),
                        "connected_clients": int(clients["connected_clients"]),
                        "blocked_clients": int(clients["blocked_clients"])}  # fmt: skip
        idle_s = time.perf_counter() - idle_began
        idle = meter.report(1)
        out["idle"] = {"seconds": round(idle_s, 1),
                       "cores": {role: round(v["ms"] / 1000 / idle_s, 3) for role, v in idle.items()
                                 if isinstance(v, dict) and "ms" in v}}  # fmt: skip
        out["api_rss_mb"] = round(
            sum(_rss_kb(pid) for pid in descendants(topology.roles["api"])) / 1024, 1
        )  # fmt: skip

        # 3. dispatches one at a time; latency = create request sent -> poll answer with that job's task read
        latencies: list[float] = []
        create_ms: list[float] = []
        polls_open: list[int] = []
        errors: dict[str, int] = {}
        meter = CpuMeter(topology.roles)
        meter.start()
        phase_began = time.perf_counter()
        for index in range(args.dispatches):
            if loop.time() > deadline:
                errors["time limit"] = errors.get("time limit", 0) + 1
                break
            polls_open.append(int(rds.zcard(pollers_key)))
            sent = time.perf_counter()
            try:
                status, answer = await asyncio.wait_for(creator.request("POST", ECHO_PATH, {"value": index}), 10)
            except REQUEST_ERRORS as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                await creator.close()
                continue
            create_ms.append((time.perf_counter() - sent) * 1000)
            if status != 202:
                errors[f"create {status}"] = errors.get(f"create {status}", 0) + 1
                continue
            try:
                received = await asyncio.wait_for(asyncio.shield(arrival(answer["job_id"])), args.task_timeout)
            except TimeoutError:
                errors["task not received"] = errors.get("task not received", 0) + 1
                continue
            latencies.append((received - sent) * 1000)
            await asyncio.sleep(args.gap)
        phase_s = time.perf_counter() - phase_began
        await asyncio.sleep(1.0)  # the last results and their steps
        meter.stop()
        ms = latencies
        out["dispatch"] = {
            "count": len(ms),
            "seconds": round(phase_s, 1),
            "latency_ms": {"p50": round(percentile(ms, 50), 1), "p90": round(percentile(ms, 90), 1),
                           "p99": round(percentile(ms, 99), 1), "max": round(max(ms, default=0.0), 1),
                           "mean": round(sum(ms) / len(ms), 1) if ms else 0.0},
            "create_ms": {"p50": round(percentile(create_ms, 50), 1), "p99": round(percentile(create_ms, 99), 1)},
            "polls_open": {"min": min(polls_open, default=0), "max": max(polls_open, default=0)},
            "errors": errors,
            "cpu": meter.report(len(ms)),
        }  # fmt: skip
        out["worker_stats"] = stats.as_dict()
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await creator.close()
        for _, lane in workers:
            await lane.close()
        rds.close()
    return out


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2000, help="registered workers, one open long-poll each")
    parser.add_argument("--dispatches", type=int, default=200, help="tasks dispatched one at a time")
    parser.add_argument(
        "--gap", type=float, default=0.05, help="seconds between one task's arrival and the next create"
    )
    parser.add_argument("--poll-timeout", type=int, default=60, help="WORKER_POLL_TIMEOUT_SECONDS of the API")
    parser.add_argument("--idle", type=float, default=10, help="seconds of idle holding measured")
    parser.add_argument("--task-timeout", type=float, default=10, help="seconds one dispatched task may take to arrive")
    parser.add_argument("--time-limit", type=float, default=300, help="seconds the whole measurement may take")
    parser.add_argument("--quiet-wait", type=float, default=60, help="wait up to this long for an idle machine")
    parser.add_argument("--pool", default="threads")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args(argv)

    limits = raise_fd_limit(2 * args.workers + 1000)
    logdir = RESULTS / "logs" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    logdir.mkdir(parents=True, exist_ok=True)
    env = {"WORKER_POLL_TIMEOUT_SECONDS": str(args.poll_timeout)}
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with redis_topology(
        logdir, pool=args.pool, concurrency=args.concurrency, app=SCENARIO_APP, worker_events=False,
        worker_connections=2 * args.workers + 100, env_extra=env,
    ) as topology:  # fmt: skip
        quiet = wait_for_quiet(timeout=args.quiet_wait) if args.quiet_wait > 0 else None
        out = asyncio.run(measure(topology, args))
        for service in topology.services:
            service.check()
    from bench.driver import git_commit

    result = {
        "scenario": "w4",
        "mode": "redis-raw",
        "started": started,
        "commit": git_commit(),
        "params": {**vars(args), **topology.settings, "busy_cores_before": quiet},
        "rlimit_nofile": limits,
        "target_p99_ms": TARGET_P99_MS,
        **out,
    }
    dispatch = out["dispatch"]
    result["met"] = out["open_polls"] >= args.workers and dispatch["latency_ms"]["p99"] < TARGET_P99_MS and \
        dispatch["count"] == args.dispatches  # fmt: skip
    path = RESULTS / f"w4-redis-raw-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")

    api_fds = sum(v["open_fds"] for v in out["fds_api"].values())
    api_limit = {v["max_open_files"] for v in out["fds_api"].values()}
    cpu = dispatch["cpu"]
    print(
        f"RLIMIT_NOFILE {limits}; API open fds {api_fds} (limit {', '.join(sorted(api_limit))}); redis {out['redis']}"
    )
    print(f"{out['open_polls']} polls open (registered and opened in {out['register_and_open_polls_s']} s); "
          f"API RSS {out['api_rss_mb']} MB; idle cores {out['idle']['cores']}")  # fmt: skip
    lat = dispatch["latency_ms"]
    print(f"{dispatch['count']}/{args.dispatches} tasks, create->task p50 {lat['p50']} p90 {lat['p90']} "
          f"p99 {lat['p99']} max {lat['max']} ms (create p50 {dispatch['create_ms']['p50']} ms); "
          f"polls open during dispatch {dispatch['polls_open']}; errors {dispatch['errors']}")  # fmt: skip
    per_dispatch = ", ".join(f"{r} {v['ms_per_unit']:.2f}" for r, v in cpu.items() if r != "machine")
    print(f"CPU ms per dispatch: {per_dispatch}; other cores {cpu['machine']['other_cores']}")
    print(f"worker stats {out['worker_stats']}")
    print(
        f"target (>= {args.workers} polls held, p99 < {TARGET_P99_MS:.0f} ms): {'met' if result['met'] else 'not met'}"
    )
    print(f"result: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
