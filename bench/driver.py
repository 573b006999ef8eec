"""The benchmark driver: start a topology, drive N jobs at K in flight over HTTP, measure, report.

Topologies (`--mode`):
  redis     one redis-server (free port) + one API process (gunicorn -k gevent -w 1 webapi.wsgi:app)
            + one Celery worker process (`--pool`, `--concurrency`), all loading `bench.apps.bench_app`
  embedded  one process running the engine's embedded mode (`engine.run()`, MemoryStorage)

Per job the latency runs from sending the create request to receiving the GET that shows a terminal status;
each job is polled first after `--poll-first` seconds, then every `--poll-interval` seconds. CPU per process
comes from utime+stime in /proc/<pid>/stat of each process and its descendants, sampled after the warm-up and
after the last job (see `bench/procs.py`).

    .venv/bin/python -m bench.driver --mode redis -n 3000 -k 64
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.clients import CLIENT_ERRORS, LaneClient, make_lanes
from bench.procs import (
    BIN,
    ROOT,
    CpuMeter,
    Service,
    free_port,
    service_env,
    start_celery_worker,
    start_redis,
    wait_for_quiet,
    wait_http,
)

RESULTS = ROOT / "bench" / "results"
APP = "bench.apps.bench_app:engine"
TERMINAL = frozenset({"finished", "failed", "cancelled", "quarantined"})


# -- topologies -----------------------------------------------------------------------------------------


@dataclass
class Topology:
    """A running system under test: its HTTP base URL and the processes whose CPU is accounted."""

    mode: str
    base: str
    roles: dict[str, int]  # role -> root pid
    settings: dict[str, Any] = field(default_factory=dict)
    services: list[Service] = field(default_factory=list)
    redis_url: str = ""  # redis topology: the redis-server's URL (db 0), for scenarios that inspect Redis


@contextmanager
def redis_topology(
    logdir: Path, *, pool: str = "threads", concurrency: int = 4, worker_loglevel: str = "WARNING",
    app: str = APP, experiments: str = "", worker_connections: int = 1000, env_extra: dict[str, str] | None = None,
    worker_events: bool = False, api_workers: int = 1,
) -> Iterator[Topology]:  # fmt: skip
    """redis-server + API (gunicorn gevent, 1 worker) + one Celery worker process.

    `worker_connections`: gunicorn's gevent connection limit (the API holds one greenlet per open request,
    long-polls included); `env_extra`: more environment for every service (e.g. WORKER_POLL_TIMEOUT_SECONDS);
    `worker_events`: start the Celery worker with `-E` (Flower's task events; off by default, as in the product;
    the experiment `events` turns them on everywhere).
    """
    services: list[Service] = []
    try:
        redis_service, url = start_redis(logdir)
        services.append(redis_service)
        env = service_env(AVTOMATIKA_APP=app, REDIS_URL=url + "/0", BENCH_EXPERIMENTS=experiments, **(env_extra or {}))
        worker = start_celery_worker(
            "celery_app", env, logdir, pool=pool, concurrency=concurrency, queue="avtomatika.steps",
            loglevel=worker_loglevel,
            events=worker_events or "events" in experiments,
        )  # fmt: skip
        services.append(worker)
        port = free_port()
        api_args = [
            str(BIN / "gunicorn"), "-k", "gevent", "-w", str(api_workers), "-b", f"127.0.0.1:{port}",
            "--graceful-timeout", "2", "--worker-connections", str(worker_connections), "webapi.wsgi:app",
        ]  # fmt: skip
        api = Service("api", api_args, env, logdir)
        services.append(api)
        base = f"http://127.0.0.1:{port}"
        wait_http(api, base)
        yield Topology(
            "redis",
            base,
            {"api": api.pid, "worker": worker.pid, "redis": redis_service.pid},
            {
                "pool": pool,
                "concurrency": concurrency,
                "worker_loglevel": worker_loglevel,
                "api": f"gunicorn gevent -w {api_workers}",
                "worker_events": worker_events or "events" in experiments,
                "experiments": experiments,
                **({"app": app} if app != APP else {}),
                **({"worker_connections": worker_connections} if worker_connections != 1000 else {}),
                **({"env": env_extra} if env_extra else {}),
            },
            services,
            url + "/0",
        )
    finally:
        for service in reversed(services):
            service.stop()


@contextmanager
def embedded_topology(logdir: Path, experiments: str = "") -> Iterator[Topology]:
    """One process: `engine.run()` of the bench app (MemoryStorage, the in-process step pool, cheroot)."""
    port = free_port()
    env = service_env(API_HOST="127.0.0.1", API_PORT=str(port), BENCH_EXPERIMENTS=experiments)
    service = Service("embedded", [sys.executable, "-m", "bench.apps.run_embedded"], env, logdir)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(service, base)
        settings = {"api": "cheroot", "experiments": experiments}
        yield Topology("embedded", base, {"embedded": service.pid}, settings, [service])
    finally:
        service.stop()


def job_ended(view: dict[str, Any]) -> str | None:
    """The terminal status a job view shows, or None while the job runs."""
    status = view.get("status")
    return status if status in TERMINAL else None


# -- load ----------------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    """What one load phase observed."""

    jobs: int = 0
    wall_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    create_latencies: list[float] = field(default_factory=list)
    # From sending the create request (wall clock) to the job's `finished_at` as the server stamped it: the
    # latency without the driver's poll quantisation (same host, same clock).
    finish_latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    polls: int = 0
    timed_out: bool = False


async def drive_jobs(
    base: str,
    path: str,
    token: str,
    n: int,
    k: int,
    *,
    client: str = "httpx",
    body: Callable[[int], Any] = lambda i: {"value": i},
    ended: Callable[[dict[str, Any]], str | None] | None = None,
    poll_first: float = 0.03,
    poll_interval: float = 0.02,
    wait: float = 30.0,
    job_timeout: float = 30.0,
    time_limit: float = 300.0,
) -> LoadResult:
    """Create `n` jobs on `path` with `k` in flight (k lanes, one connection each) and follow each to its end.

    With `wait` > 0 each follow-up is `GET /api/v1/jobs/{id}?wait=<wait>`, a long-poll the API answers when
    the job ends (normally one GET per job); with `wait=0` the driver polls (`poll_first`, `poll_interval`).
    `ended(view)` names the end a job view shows, or None while it runs (default: a terminal `status`).
    """
    ended = ended or job_ended
    result = LoadResult()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + time_limit
    next_index = 0

    async def one(http: LaneClient, index: int) -> None:
        started, sent_at = time.perf_counter(), time.time()
        status, answer = await http.request("POST", path, body(index))
        result.create_latencies.append(time.perf_counter() - started)
        if status != 202:
            result.errors[f"create {status}"] += 1
            return
        view_path = f"/api/v1/jobs/{answer['job_id']}" + (f"?wait={wait:g}" if wait > 0 else "")
        give_up = started + job_timeout
        if wait <= 0:
            await asyncio.sleep(poll_first)
        while True:
            status, view = await http.request("GET", view_path)
            result.polls += 1
            if status == 200:
                end = ended(view)
                if end is not None:
                    result.latencies.append(time.perf_counter() - started)
                    result.statuses[end] += 1
                    if isinstance(view.get("finished_at"), int | float):
                        result.finish_latencies.append(view["finished_at"] - sent_at)
                    return
            else:
                result.errors[f"get {status}"] += 1
            if time.perf_counter() > give_up or loop.time() > deadline:
                result.errors["job timeout"] += 1
                return
            if wait <= 0:
                await asyncio.sleep(poll_interval)

    async def lane(http: LaneClient) -> None:
        nonlocal next_index
        while next_index < n:
            if loop.time() > deadline:
                result.timed_out = True
                return
            index, next_index = next_index, next_index + 1
            try:
                await one(http, index)
            except CLIENT_ERRORS as exc:
                result.errors[type(exc).__name__] += 1
            result.jobs += 1

    lanes = make_lanes(client, base, {"X-Avtomatika-Token": token}, k)
    try:
        began = time.perf_counter()
        await asyncio.gather(*(lane(http) for http in lanes))
        result.wall_s = time.perf_counter() - began
    finally:
        for http in lanes:
            await http.close()
    return result


# -- measurement and report -----------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of `values`, 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def git_commit() -> str:
    """The commit under test (`BENCH_COMMIT` overrides it, e.g. when running from a `git archive` snapshot)."""
    if os.environ.get("BENCH_COMMIT"):
        return os.environ["BENCH_COMMIT"]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True)  # fmt: skip
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except OSError:
        return "unknown"


def summarize(
    scenario: str, mode: str, load: LoadResult, cpu: dict[str, Any], params: dict[str, Any], unit: str = "job"
) -> dict[str, Any]:
    """The JSON result of one measured phase."""
    done = len(load.latencies)
    ms = [x * 1000 for x in load.latencies]
    create_ms = [x * 1000 for x in load.create_latencies]
    finish_ms = [x * 1000 for x in load.finish_latencies]
    return {
        "scenario": scenario,
        "mode": mode,
        "unit": unit,
        "started": params.pop("started", None),
        "commit": git_commit(),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()},
        "params": params,
        "completed": done,
        "attempted": load.jobs,
        "statuses": dict(load.statuses),
        "errors": dict(load.errors),
        "timed_out": load.timed_out,
        "wall_s": round(load.wall_s, 3),
        "per_s": round(done / load.wall_s, 1) if load.wall_s else 0.0,
        "latency_ms": {
            "p50": round(percentile(ms, 50), 1),
            "p90": round(percentile(ms, 90), 1),
            "p99": round(percentile(ms, 99), 1),
            "max": round(max(ms, default=0.0), 1),
            "mean": round(sum(ms) / len(ms), 1) if ms else 0.0,
        },
        "create_ms": {"p50": round(percentile(create_ms, 50), 1), "p99": round(percentile(create_ms, 99), 1)},
        "finish_ms": {"p50": round(percentile(finish_ms, 50), 1), "p99": round(percentile(finish_ms, 99), 1)},
        "polls": load.polls,
        "polls_per_unit": round(load.polls / done, 2) if done else 0.0,
        "cpu": cpu,
    }


def write_result(result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = RESULTS / f"{result['scenario']}-{result['mode']}-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def format_table(results: list[dict[str, Any]]) -> str:
    """A readable table: one row per result, CPU ms per job (or chain) per role."""
    roles: list[str] = []
    for result in results:
        for role in result["cpu"]:
            if role not in ("total", "machine") and role not in roles:
                roles.append(role)
    head = ["scenario", "mode", "done", "err", "/s", "p50 ms", "p99 ms", "polls/u"]
    head += [f"{r} ms/u" for r in roles] + ["total ms/u", "busy cores", "other cores"]
    rows = [head]
    for r in results:
        latency = r["latency_ms"]
        row = [r["scenario"], r["mode"], str(r["completed"]), str(sum(r["errors"].values())), f"{r['per_s']:.0f}",
               f"{latency['p50']:.1f}", f"{latency['p99']:.1f}", f"{r['polls_per_unit']:.2f}"]  # fmt: skip
        row += [f"{r['cpu'][role]['ms_per_unit']:.2f}" if role in r["cpu"] else "-" for role in roles]
        row.append(f"{r['cpu']['total']['ms_per_unit']:.2f}")
        row += [f"{r['cpu']['machine']['busy_cores']:.2f}", f"{r['cpu']['machine']['other_cores']:.2f}"]
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# -- one measured run -----------------------------------------------------------------------------------


@dataclass
class JobsRun:
    """Parameters of a jobs benchmark against an HTTP topology."""

    scenario: str
    path: str
    n: int
    k: int
    warmup: int = 200
    poll_first: float = 0.03
    poll_interval: float = 0.02
    wait: float = 30.0
    job_timeout: float = 30.0
    time_limit: float = 300.0
    quiet_wait: float = 60.0
    client: str = "httpx"
    profile: bool = False
    token: str = ""
    ended: Callable[[dict[str, Any]], str | None] | None = None  # see drive_jobs; None: a terminal `status`


def run_jobs(topology: Topology, run: JobsRun) -> dict[str, Any]:
    """Warm up, then measure `run.n` jobs at `run.k` in flight against `topology`; returns the JSON result.

    With `run.profile`, py-spy samples every role's process tree during the measured phase (see `start_profilers`).
    """
    from bench.apps.bench_app import BENCH_TOKEN

    token = run.token or BENCH_TOKEN
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    common = dict(client=run.client, poll_first=run.poll_first, poll_interval=run.poll_interval,
                  wait=run.wait, job_timeout=run.job_timeout, ended=run.ended)  # fmt: skip
    quiet = wait_for_quiet(timeout=run.quiet_wait) if run.quiet_wait > 0 else None
    if run.warmup:
        warm = asyncio.run(drive_jobs(topology.base, run.path, token, run.warmup, run.k, time_limit=60, **common))
        if len(warm.latencies) < run.warmup:
            raise RuntimeError(f"warm-up failed: {dict(warm.errors)} {dict(warm.statuses)}")
    mode = topology.mode if run.client == "httpx" else f"{topology.mode}-{run.client}"
    profilers = start_profilers(topology, f"{run.scenario}-{mode}") if run.profile else []
    meter = CpuMeter(topology.roles)
    meter.start()
    load = asyncio.run(drive_jobs(topology.base, run.path, token, run.n, run.k, time_limit=run.time_limit, **common))
    meter.stop()
    profiles = stop_profilers(profilers)
    for service in topology.services:
        service.check()
    params = {k: v for k, v in asdict(run).items() if k not in ("token", "scenario", "ended")}
    params.update(topology.settings, started=started, busy_cores_before=quiet)
    if profiles:
        params["profiles"] = profiles
    return summarize(run.scenario, mode, load, meter.report(len(load.latencies)), params)


def start_profilers(topology: Topology, label: str) -> list[tuple[subprocess.Popen[bytes], Path]]:
    """py-spy record on each role's process tree: collapsed stacks, 250 Hz, only threads holding the GIL.

    `--gil` keeps samples to threads running Python: without it the gevent hub's idle waits showed up as
    `SocketMixin.send` and doubled the API's apparent busy time.
    """
    spy = BIN / "py-spy"
    if not spy.exists():
        raise RuntimeError("profiling needs py-spy: .venv/bin/pip install py-spy")
    outdir = RESULTS / "profiles"
    outdir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    started = []
    for role, pid in topology.roles.items():
        if role == "redis":
            continue
        out = outdir / f"{label}-{role}-{stamp}.txt"
        args = [str(spy), "record", "--pid", str(pid), "--subprocesses", "--gil", "--rate", "250",
                "--format", "raw", "--output", str(out)]  # fmt: skip
        started.append((subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out))
    time.sleep(1.0)  # py-spy attaches in well under a second
    return started


def stop_profilers(profilers: list[tuple[subprocess.Popen[bytes], Path]]) -> list[str]:
    """Stop py-spy (SIGINT makes it write its output); returns the written files."""
    for proc, _ in profilers:
        proc.send_signal(signal.SIGINT)
    written = []
    for proc, out in profilers:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        if out.exists():
            written.append(str(out.relative_to(ROOT)))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["redis", "embedded"], default="redis")
    parser.add_argument("--scenario", default="custom", help="name used in the result file")
    parser.add_argument("--path", default="/api/v1/jobs/linear", help="create route of the blueprint")
    parser.add_argument("-n", type=int, default=3000, help="jobs to measure")
    parser.add_argument("-k", type=int, default=64, help="jobs in flight")
    parser.add_argument("--warmup", type=int, default=200, help="jobs run before measuring (not counted)")
    parser.add_argument("--pool", default="threads", help="Celery pool of the worker process (redis mode)")
    parser.add_argument("--concurrency", type=int, default=4, help="Celery worker concurrency (redis mode)")
    parser.add_argument("--worker-loglevel", default="WARNING", help="Celery worker -l (INFO logs every task)")
    parser.add_argument("--poll-first", type=float, default=0.03, help="seconds before a job's first GET")
    parser.add_argument("--poll-interval", type=float, default=0.02, help="seconds between a job's GETs")
    parser.add_argument("--time-limit", type=float, default=300, help="seconds the measured phase may take")
    parser.add_argument("--quiet-wait", type=float, default=60, help="wait up to this long for an idle machine")
    parser.add_argument("--client", choices=["httpx", "raw"], default="httpx", help="HTTP client of the driver")
    parser.add_argument("--profile", action="store_true", help="py-spy the API and worker during the measured phase")
    parser.add_argument(
        "--experiments", default="", help="BENCH_EXPERIMENTS for the services (bench/apps/bench_app.py)"
    )
    args = parser.parse_args(argv)
    run = JobsRun(args.scenario, args.path, args.n, args.k, args.warmup, args.poll_first, args.poll_interval,
                  time_limit=args.time_limit, quiet_wait=args.quiet_wait, client=args.client,
                  profile=args.profile)  # fmt: skip
    logdir = RESULTS / "logs" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    logdir.mkdir(parents=True, exist_ok=True)
    if args.mode == "redis":
        topology_cm = redis_topology(logdir, pool=args.pool, concurrency=args.concurrency,
                                     worker_loglevel=args.worker_loglevel, experiments=args.experiments)  # fmt: skip
    else:
        topology_cm = embedded_topology(logdir, args.experiments)
    with topology_cm as topology:
        print(f"{topology.mode}: {topology.base} pids {topology.roles}", flush=True)
        result = run_jobs(topology, run)
    path = write_result(result)
    print(format_table([result]))
    print(f"result: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
