"""The bare-Celery floor: chains of no-op tasks through one Redis and one worker process, N chains at K in flight.

What Celery alone costs per chain under the engine's reliability settings; the engine's S1 job (five states,
burst into one step task) should beat a chain of five tasks, and must not cost much more than one task.

    .venv/bin/python -m bench.floor -n 3000 -k 64 --length 5
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.driver import RESULTS, LoadResult, format_table, summarize, write_result
from bench.procs import ROOT, CpuMeter, Service, service_env, start_celery_worker, start_redis, wait_for_quiet

FLOOR_APP = "bench.apps.floor_app"


def drive_chains(url: str, n: int, k: int, length: int, time_limit: float) -> LoadResult:
    """Publish `n` chains keeping `k` in flight; a chain is done when its last task RPUSHes to the done list."""
    import redis

    from bench.apps import floor_app

    if floor_app.app.conf.broker_url != url:
        # floor_app reads its broker URL at import: one floor Redis per driver process.
        raise RuntimeError(f"floor_app is bound to {floor_app.app.conf.broker_url}, not {url}")
    done_client = redis.Redis.from_url(url, socket_timeout=None)
    result = LoadResult()
    sent_at: dict[int, float] = {}
    sent = 0
    deadline = time.monotonic() + time_limit

    def send() -> None:
        nonlocal sent
        sent_at[sent] = time.perf_counter()
        floor_app.send_chain(sent, length)
        sent += 1

    began = time.perf_counter()
    for _ in range(min(k, n)):
        send()
    while len(result.latencies) < sent:
        if time.monotonic() > deadline:
            result.timed_out = True
            break
        popped = done_client.blpop([floor_app.DONE_KEY], timeout=1)
        if popped is None:
            continue
        chain_id = int(popped[1].split(b":", 1)[0])
        result.latencies.append(time.perf_counter() - sent_at.pop(chain_id))
        result.statuses["finished"] += 1
        if sent < n:
            send()
    result.wall_s = time.perf_counter() - began
    result.jobs = sent
    result.errors.update({"lost": len(sent_at)} if sent_at else {})
    done_client.close()
    return result


def run_floor(
    logdir: Path,
    *,
    n: int = 3000,
    k: int = 64,
    length: int = 5,
    warmup: int = 200,
    pool: str = "threads",
    concurrency: int = 4,
    loglevel: str = "WARNING",
    events: bool = True,
    time_limit: float = 300.0,
    quiet_wait: float = 60.0,
    scenario: str = "s1",
) -> dict[str, Any]:
    """Start redis-server + a worker of the floor app, measure, stop; returns the JSON result."""
    services: list[Service] = []
    try:
        redis_service, base_url = start_redis(logdir)
        services.append(redis_service)
        url = base_url + "/2"
        # The driver publishes with the same app module the worker runs: point both at this Redis.
        os.environ["BENCH_FLOOR_REDIS_URL"] = url
        os.environ["BENCH_FLOOR_EVENTS"] = "1" if events else "0"
        env = service_env(BENCH_FLOOR_REDIS_URL=url, BENCH_FLOOR_EVENTS="1" if events else "0")
        worker = start_celery_worker(
            FLOOR_APP, env, logdir, pool=pool, concurrency=concurrency, queue="bench.floor", loglevel=loglevel
        )
        services.append(worker)
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        quiet = wait_for_quiet(timeout=quiet_wait) if quiet_wait > 0 else None
        if warmup:
            warm = drive_chains(url, warmup, k, length, 60)
            if len(warm.latencies) < warmup:
                raise RuntimeError(f"floor warm-up failed: {warm.errors}")
        meter = CpuMeter({"worker": worker.pid, "redis": redis_service.pid})
        meter.start()
        load = drive_chains(url, n, k, length, time_limit)
        meter.stop()
        worker.check()
    finally:
        for service in reversed(services):
            service.stop()
    params = {
        "n": n, "k": k, "chain_length": length, "warmup": warmup, "pool": pool, "concurrency": concurrency,
        "worker_loglevel": loglevel, "events": events, "started": started, "busy_cores_before": quiet,
    }  # fmt: skip
    return summarize(scenario, "celery-floor", load, meter.report(len(load.latencies)), params, unit="chain")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=3000, help="chains to measure")
    parser.add_argument("-k", type=int, default=64, help="chains in flight")
    parser.add_argument("--length", type=int, default=5, help="tasks per chain")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--pool", default="threads")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--worker-loglevel", default="WARNING")
    parser.add_argument("--no-events", action="store_true", help="worker and publisher send no task events")
    parser.add_argument("--time-limit", type=float, default=300)
    parser.add_argument("--quiet-wait", type=float, default=60)
    parser.add_argument("--scenario", default="floor")
    args = parser.parse_args(argv)
    logdir = RESULTS / "logs" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    logdir.mkdir(parents=True, exist_ok=True)
    result = run_floor(
        logdir, n=args.n, k=args.k, length=args.length, warmup=args.warmup, pool=args.pool,
        concurrency=args.concurrency, loglevel=args.worker_loglevel, events=not args.no_events,
        time_limit=args.time_limit, quiet_wait=args.quiet_wait, scenario=args.scenario,
    )  # fmt: skip
    path = write_result(result)
    print(format_table([result]))
    print(f"result: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
