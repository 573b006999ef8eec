"""A bare Celery chord for the S3 floor: `BENCH_FLOOR_REDIS_URL=... celery -A bench.apps.chord_floor_app worker
-Q bench.chord`. N no-op header tasks and a body that RPUSHes a done marker, with the engine's settings."""

from __future__ import annotations

import os

import redis
from celery import Celery

QUEUE = "bench.chord"
DONE_KEY = "bench:chord:done"
_url = os.environ.get("BENCH_FLOOR_REDIS_URL", "redis://127.0.0.1:6379/3")

app = Celery("bench_chord", broker=_url, backend=_url, set_as_current=False)
app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_default_queue=QUEUE,
    task_serializer="json",
    accept_content=["json"],
    result_serializer="json",
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench.noop")
def noop(index: int) -> int:
    return index


@app.task(name="bench.body", ignore_result=True)
def body(results: list[int]) -> None:
    redis.Redis.from_url(_url).rpush(DONE_KEY, len(results))
