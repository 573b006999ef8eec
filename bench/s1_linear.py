"""Scenario S1: the 5-state linear blueprint, N jobs at K in flight, create -> finished.

One run measures, each in a fresh topology and one after the other:
  redis         redis-server + API (gunicorn gevent, 1 worker) + one Celery worker process
  embedded      one process, `engine.run()` (MemoryStorage, in-memory Celery)
  celery-floor  bare Celery: chains of 5 no-op tasks through a fresh redis-server and one worker process
Each HTTP mode runs once per driver client in `--clients` (`httpx`, and `raw` to show the figures when the
driver itself is cheap). Every result goes to bench/results/s1-<mode>-<timestamp>.json; a table is printed.

    .venv/bin/python -m bench.s1_linear                      # N=3000, K=64, every mode
    .venv/bin/python -m bench.s1_linear --modes redis --pool prefork --concurrency 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from bench.driver import RESULTS, ROOT, JobsRun, embedded_topology, format_table, redis_topology, run_jobs, write_result
from bench.floor import run_floor

SCENARIO = "s1"
PATH = "/api/v1/jobs/linear"
TARGET = {"jobs_per_s": 570, "p99_ms": 220}
MODES = ("redis", "embedded", "celery-floor")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=3000, help="jobs (and floor chains) to measure")
    parser.add_argument("-k", type=int, default=64, help="in flight")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}")
    parser.add_argument("--clients", default="httpx,raw", help="driver HTTP clients to run each HTTP mode with")
    parser.add_argument("--pool", default="threads", help="Celery pool of the worker process (redis, floor)")
    parser.add_argument("--concurrency", type=int, default=4, help="Celery worker concurrency (redis, floor)")
    parser.add_argument("--worker-loglevel", default="WARNING")
    parser.add_argument("--poll-first", type=float, default=0.03)
    parser.add_argument("--poll-interval", type=float, default=0.02)
    parser.add_argument("--time-limit", type=float, default=300, help="seconds each measured phase may take")
    parser.add_argument("--quiet-wait", type=float, default=60, help="wait up to this long for an idle machine")
    parser.add_argument("--profile", action="store_true", help="py-spy the API and worker (redis mode)")
    parser.add_argument("--experiments", default="", help="BENCH_EXPERIMENTS (see bench/apps/bench_app.py)")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown modes {sorted(unknown)}")
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]

    logdir = RESULTS / "logs" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    logdir.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    for mode in modes:
        if mode == "celery-floor":
            result = run_floor(
                logdir, n=args.n, k=args.k, length=5, warmup=args.warmup, pool=args.pool,
                concurrency=args.concurrency, loglevel=args.worker_loglevel, time_limit=args.time_limit,
                quiet_wait=args.quiet_wait, scenario=SCENARIO, events="events" in args.experiments,
            )  # fmt: skip
            results.append(result)
            print(f"{mode}: {result['per_s']} chains/s -> {write_result(result).relative_to(ROOT)}", flush=True)
            continue
        for client in clients:
            run = JobsRun(
                SCENARIO, PATH, args.n, args.k, args.warmup, args.poll_first, args.poll_interval,
                time_limit=args.time_limit, quiet_wait=args.quiet_wait, client=client,
                profile=args.profile and mode == "redis",
            )  # fmt: skip
            if mode == "redis":
                topology = redis_topology(
                    logdir, pool=args.pool, concurrency=args.concurrency, worker_loglevel=args.worker_loglevel,
                    experiments=args.experiments,
                )  # fmt: skip
            else:
                topology = embedded_topology(logdir, args.experiments)
            with topology as running:
                result = run_jobs(running, run)
            results.append(result)
            print(f"{result['mode']}: {result['per_s']} jobs/s -> {write_result(result).relative_to(ROOT)}", flush=True)

    print()
    print(format_table(results))
    for result in results:
        if result["mode"].startswith("redis"):
            met = result["per_s"] >= TARGET["jobs_per_s"] and result["latency_ms"]["p99"] <= TARGET["p99_ms"]
            print(f"target ({TARGET['jobs_per_s']} jobs/s, p99 <= {TARGET['p99_ms']} ms) in {result['mode']}: "
                  f"{'met' if met else 'not met'}")  # fmt: skip
    summary = RESULTS / f"{SCENARIO}-summary-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    summary.write_text(json.dumps({"target": TARGET, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
