"""A bare Celery app for the floor measurement: chains of no-op tasks through the same Redis as the engine.

`BENCH_FLOOR_REDIS_URL=redis://... celery -A bench.apps.floor_app worker -Q bench.floor`. The settings mirror
the engine's reliability settings (DESIGN §3) so the floor is what Celery itself costs under them.
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery, chain

QUEUE = "bench.floor"
DONE_KEY = "bench:floor:done"

_url = os.environ.get("BENCH_FLOOR_REDIS_URL", "redis://127.0.0.1:6379/2")
_events = os.environ.get("BENCH_FLOOR_EVENTS", "1") == "1"

app = Celery("bench_floor", broker=_url, backend=None, set_as_current=False)
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_default_queue=QUEUE,
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    worker_send_task_events=_events,
    task_send_sent_event=_events,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    broker_transport_options={"visibility_timeout": 60, "unacked_restore_interval": 1, "unacked_restore_throttle": 1},
)

_done_client: Any = None


def _client() -> Any:
    global _done_client
    if _done_client is None:
        import redis

        _done_client = redis.Redis.from_url(_url)
    return _done_client


@app.task(name="bench.noop")
def noop() -> None:
    """Does nothing: the cost measured is Celery's."""


@app.task(name="bench.done")
def done(chain_id: int, sent_at: float) -> None:
    """Last link: tell the driver the chain is through (one RPUSH)."""
    _client().rpush(DONE_KEY, f"{chain_id}:{sent_at}:{time.time()}")


def send_chain(chain_id: int, length: int = 5) -> None:
    """Publish one chain of `length` tasks (length - 1 no-ops, then `done`)."""
    links = [noop.si() for _ in range(length - 1)] + [done.si(chain_id, time.time())]
    chain(*links).apply_async(queue=QUEUE)
