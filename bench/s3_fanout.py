"""Scenario S3: fan-out / fan-in in the production topology, against a bare Celery chord in the same run.

One job fans out to W branches served by 8 HTTP workers (threads speaking the worker protocol: register,
long-poll, result), in the production topology: the API under gunicorn gevent with deploy/gunicorn.conf.py's
2 workers (`--api-workers`), one prefork Celery worker of 2. The figure is the time from the create request
to the job's end (the aggregator ran), next to a bare Celery chord of W no-op tasks (apply to body) through
the same redis-server and a Celery worker of the same size. Redis bytes per branch: `MEMORY USAGE` of the
fan-out's branch records and queue once every branch is queued, before any worker takes one, divided by W
(the growth of `used_memory_dataset` is shown beside it; it also counts the chord's messages, and is
disturbed by memory a previous width's fan-in freed).

    .venv/bin/python -m bench.s3_fanout --widths 1000 10000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import httpx
import redis

from bench.apps.bench_app import BENCH_TOKEN, BENCH_WORKER_TOKEN
from bench.driver import redis_topology, start_profilers, stop_profilers
from bench.procs import CpuMeter, Service, service_env, start_celery_worker

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


def serve(base: str, task_type: str, count: int) -> list[threading.Thread]:
    served: list[int] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        worker_id = f"s3-{task_type}-{index}"
        with httpx.Client(base_url=base, headers={"X-Worker-Token": BENCH_WORKER_TOKEN}, timeout=60) as http:
            http.post("/_worker/workers/register", json={"worker_id": worker_id, "supported_tasks": [task_type]})
            while True:
                with lock:
                    if len(served) >= count:
                        return
                answer = http.get(f"/_worker/workers/{worker_id}/tasks/next")
                if answer.status_code != 200:
                    continue
                task = answer.json()
                with lock:
                    served.append(1)
                body = {
                    "job_id": task["job_id"],
                    "task_id": task["task_id"],
                    "worker_id": worker_id,
                    "result": {"status": "success", "data": {"path": f"/t/{task['params']['frame']}.jpg"}},
                }
                http.post("/_worker/tasks/result", json=body)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(WORKERS)]
    for thread in threads:
        thread.start()
    return threads


def fan_out(topology, width: int) -> dict[str, float]:
    client = redis.Redis.from_url(topology.redis_url)
    task_type = f"thumb{width}"
    headers = {"X-Avtomatika-Token": BENCH_TOKEN}
    before = int(client.info("memory")["used_memory_dataset"])
    started = time.monotonic()
    with httpx.Client(base_url=topology.base, headers=headers, timeout=120) as http:
        job_id = http.post("/api/v1/jobs/thumbnails", json={"task_type": task_type, "frames": width}).json()["job_id"]
        while http.get(f"/api/v1/jobs/{job_id}").json()["status"] != "waiting_for_parallel_tasks":
            time.sleep(0.01)
        dispatched = time.monotonic() - started
        queued = int(client.info("memory")["used_memory_dataset"])
        # what this fan-out holds per branch while every branch waits: its records and its queue entries
        prefix = "avtomatika"
        held = sum(
            int(client.memory_usage(key, samples=0) or 0)
            for key in (f"{prefix}:branches:{job_id}", f"{prefix}:queue:{task_type}")
        )
        threads = serve(topology.base, task_type, width)
        view = http.get(f"/api/v1/jobs/{job_id}", params={"wait": 60}).json()
        while view["status"] not in ("finished", "failed", "quarantined", "cancelled"):
            view = http.get(f"/api/v1/jobs/{job_id}", params={"wait": 60}).json()
    elapsed = time.monotonic() - started
    for thread in threads:
        thread.join(5)
    assert view["status"] == "finished" and len(view["state_history"]["thumbnails"]) == width, view["status"]
    return {
        "seconds_create_to_end": round(elapsed, 2),
        "seconds_to_dispatch": round(dispatched, 2),
        "redis_bytes_per_branch": round(held / width),
        "used_memory_dataset_growth_per_branch": round((queued - before) / width),
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
            meter = CpuMeter(topology.roles)
            meter.start()
            ours = fan_out(topology, width)
            meter.stop()
            cpu = meter.report(width)
            ours["cpu_ms_per_branch"] = {
                role: cpu[role]["ms_per_unit"] for role in (*topology.roles, "driver", "total")
            }
            ours["other_cores"] = cpu["machine"]["other_cores"]
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
