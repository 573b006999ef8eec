"""Scenario S3: fan-out / fan-in in the production topology, against a bare Celery chord in the same run.

One job fans out to W branches served by 8 HTTP workers (`bench/http_workers.py`: one process, the raw
asyncio client: register, long-poll, result), in the production topology: the API under gunicorn gevent with
deploy/gunicorn.conf.py's 2 workers (`--api-workers`), one prefork Celery worker of 2. The figure is the time
from the create request to the job's end (the aggregator ran), next to a bare Celery chord of W no-op tasks
(apply to body) through the same redis-server and a Celery worker of the same size, with the CPU per branch
of each role. Redis bytes per branch: `MEMORY USAGE` of the branch records and queue of a fan-out of the same
width whose task type no worker serves, once every branch is queued, divided by W (the growth of
`used_memory_dataset` is shown beside it; it also counts the chord's messages); that job is then cancelled.

    .venv/bin/python -m bench.s3_fanout --widths 1000 10000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import redis

from bench.apps.bench_app import BENCH_TOKEN
from bench.driver import redis_topology, start_profilers, stop_profilers
from bench.procs import CpuMeter, Service, service_env, start_celery_worker
from bench.w1_workers import start_http_workers

WORKERS = 8


def bare_chord(url: str, width: int, logdir: Path) -> float:
    """Seconds from applying a chord of `width` no-ops to its body, with its own Celery worker."""
    env = service_env(BENCH_FLOOR_REDIS_URL=url)
    worker: Service = start_celery_worker(
        "bench.apps.chord_floor_app", env, logdir, pool="threads", concurrency=4, queue="bench.chord",
        loglevel="WARNING", events=False,
    )  # fmt: skip
    try:
        import os

        os.environ["BENCH_FLOOR_REDIS_URL"] = url
        from celery import chord

        from bench.apps import chord_floor_app as floor

        client = redis.Redis.from_url(url, socket_timeout=None)  # redis-py's default 5 s would cut the BLPOP
        client.delete(floor.DONE_KEY)
        started = time.monotonic()
        chord([floor.noop.s(i) for i in range(width)], floor.body.s()).apply_async()
        client.blpop([floor.DONE_KEY], timeout=300)
        return time.monotonic() - started
    finally:
        worker.stop()


def wait_status(http: httpx.Client, job_id: str, status: str) -> None:
    while http.get(f"/api/v1/jobs/{job_id}").json()["status"] != status:
        time.sleep(0.01)


def parked_bytes(topology, http: httpx.Client, width: int) -> dict[str, int]:
    """Redis bytes per branch of a fan-out whose branches all wait (a task type no worker serves): its branch
    records and queue entries (`MEMORY USAGE`), and the growth of `used_memory_dataset` with the chord's
    messages. The job is cancelled afterwards."""
    client = redis.Redis.from_url(topology.redis_url)
    task_type = f"parked{width}"
    before = int(client.info("memory")["used_memory_dataset"])
    job_id = http.post("/api/v1/jobs/thumbnails", json={"task_type": task_type, "frames": width}).json()["job_id"]
    wait_status(http, job_id, "waiting_for_parallel_tasks")
    queued = int(client.info("memory")["used_memory_dataset"])
    prefix = "avtomatika"
    held = sum(
        int(client.memory_usage(key, samples=0) or 0)
        for key in (f"{prefix}:branches:{job_id}", f"{prefix}:queue:{task_type}")
    )
    http.post(f"/api/v1/jobs/{job_id}/cancel")
    wait_status(http, job_id, "cancelled")
    # its chord members still run (each finds its branch withdrawn): let the Celery worker drain them first
    while client.llen("avtomatika.steps") or client.hlen("unacked"):
        time.sleep(0.05)
    return {
        "redis_bytes_per_branch": round(held / width),
        "used_memory_dataset_growth_per_branch": round((queued - before) / width),
    }


def fan_out(topology, width: int, logdir: Path) -> dict[str, Any]:
    """Create-to-end seconds of one fan-out of `width` branches served by the HTTP-worker process."""
    task_type = f"thumb{width}"
    headers = {"X-Avtomatika-Token": BENCH_TOKEN}
    with httpx.Client(base_url=topology.base, headers=headers, timeout=120) as http:
        sizes = parked_bytes(topology, http, width)
        stats = logdir / f"s3-workers-{width}.json"
        workers = start_http_workers(
            topology, logdir, WORKERS, stats, types=task_type, prefix=f"s3-{width}", result="thumbnail"
        )
        topology.roles["http_workers"] = workers.pid
        meter = CpuMeter(topology.roles)
        meter.start()
        started = time.monotonic()
        job_id = http.post("/api/v1/jobs/thumbnails", json={"task_type": task_type, "frames": width}).json()["job_id"]
        view = http.get(f"/api/v1/jobs/{job_id}", params={"wait": 60}).json()
        while view["status"] not in ("finished", "failed", "quarantined", "cancelled"):
            view = http.get(f"/api/v1/jobs/{job_id}", params={"wait": 60}).json()
        elapsed = time.monotonic() - started
        meter.stop()
        workers.stop()
        del topology.roles["http_workers"]
    assert view["status"] == "finished" and len(view["state_history"]["thumbnails"]) == width, view["status"]
    cpu = meter.report(width)
    system = ("api", "worker", "redis")
    return {
        "seconds_create_to_end": round(elapsed, 2),
        **sizes,
        "cpu_ms_per_branch": {
            **{role: cpu[role]["ms_per_unit"] for role in (*system, "http_workers")},
            "system_under_test": round(sum(cpu[role]["ms_per_unit"] for role in system), 3),
        },
        "other_cores": cpu["machine"]["other_cores"],
        "api_pids": cpu["api"]["pids"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--profile", action="store_true", help="py-spy every role during the fan-outs")
    parser.add_argument(
        "--api-workers", type=int, default=2, help="gunicorn workers (deploy/gunicorn.conf.py's default: 2)"
    )
    args = parser.parse_args()
    results = []
    with (
        tempfile.TemporaryDirectory() as logdir,
        redis_topology(
            Path(logdir),
            app="bench.apps.fanout_app:engine",
            pool="prefork",
            concurrency=2,
            api_workers=args.api_workers,
        ) as topology,
    ):
        floor_url = topology.redis_url.rsplit("/", 1)[0] + "/3"
        for width in args.widths:
            chord_seconds = bare_chord(floor_url, width, Path(logdir))
            profilers = start_profilers(topology, f"s3-{width}") if args.profile else []
            ours = fan_out(topology, width, Path(logdir))
            if profilers:
                ours["profiles"] = stop_profilers(profilers)  # type: ignore[assignment]
            results.append(
                {
                    "width": width,
                    "bare_chord_seconds": round(chord_seconds, 2),
                    **ours,
                    "ratio_to_bare_chord": round(ours["seconds_create_to_end"] / chord_seconds, 2),
                }
            )
    summary = {"scenario": "S3 fan-out", "http_workers": WORKERS, "api_workers": args.api_workers, "results": results}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
