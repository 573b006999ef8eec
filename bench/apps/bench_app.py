"""The engine every benchmark process loads: `AVTOMATIKA_APP=bench.apps.bench_app:engine`.

With `REDIS_URL` set (Redis topology) the engine uses Redis for state, broker and results; without it it is the
embedded default (MemoryStorage, in-memory Celery transport).
"""

from __future__ import annotations

import os
from typing import Any

from avtomatika import OrchestratorEngine
from avtomatika.config import Config
from avtomatika.storage import MemoryStorage
from blueprints.linear import linear

BENCH_TOKEN = "bench-client-token-0123456789abcdef"
BENCH_WORKER_TOKEN = "bench-worker-token-0123456789abcdef"

config = Config()
config.CLIENT_TOKEN = os.environ.get("BENCH_CLIENT_TOKEN", BENCH_TOKEN)
config.GLOBAL_WORKER_TOKEN = os.environ.get("BENCH_WORKER_TOKEN", BENCH_WORKER_TOKEN)
config.API_HOST = os.environ.get("API_HOST", "127.0.0.1")
# Rate limiting stays at the product default (on, RATE_LIMIT_CLIENT per client): S1 stays well below it, and
# a 429 would show up in the result's errors. The experiment `no-rate-limit` measures what the check costs.

engine = OrchestratorEngine(MemoryStorage(), config)
engine.register_blueprint(linear)

# -- experiments ------------------------------------------------------------------------------------------
# `BENCH_EXPERIMENTS=a,b` (the driver's `--experiments`) changes settings or library behaviour in every
# process of the topology, to measure what a proposed change would gain before anyone changes the product.
EXPERIMENTS = frozenset(x.strip() for x in os.environ.get("BENCH_EXPERIMENTS", "").split(",") if x.strip())
KNOWN_EXPERIMENTS = {
    "no-rate-limit": "RATE_LIMITING_ENABLED off (no per-request counter in Redis)",
    "no-events": "no Celery task events at all (worker_send_task_events and task_send_sent_event off, no -E)",
    "no-sent-event": "no task-sent event from the publisher (the API); worker events stay on",
    "kombu-client-cache": "kombu's Redis channel reuses one redis.Redis per channel instead of one per publish/ack",
    "direct-step-publish": "step messages (no countdown) are one LPUSH of a prebuilt Celery protocol-2 message on "
    "the storage's Redis client, bypassing apply_async/kombu (no task-sent event)",
}


def _apply_experiments() -> None:
    unknown = EXPERIMENTS - set(KNOWN_EXPERIMENTS)
    if unknown:
        raise SystemExit(f"unknown BENCH_EXPERIMENTS {sorted(unknown)}; known: {sorted(KNOWN_EXPERIMENTS)}")
    if "no-rate-limit" in EXPERIMENTS:
        config.RATE_LIMITING_ENABLED = False
    if "no-events" in EXPERIMENTS:
        engine.celery.conf.update(worker_send_task_events=False, task_send_sent_event=False)
    if "no-sent-event" in EXPERIMENTS:
        engine.celery.conf.update(task_send_sent_event=False)
    if "kombu-client-cache" in EXPERIMENTS:
        from kombu.transport import redis as kombu_redis

        create = kombu_redis.Channel._create_client

        def cached_client(self: Any, asynchronous: bool = False) -> Any:
            if asynchronous:
                return create(self, asynchronous=True)
            client = self.__dict__.get("_bench_sync_client")
            if client is None:
                client = self.__dict__["_bench_sync_client"] = create(self)
            return client

        kombu_redis.Channel._create_client = cached_client
    if "direct-step-publish" in EXPERIMENTS:
        _publish_steps_directly()


def _publish_steps_directly() -> None:
    """Replace `CeleryStepScheduler.schedule_step` by an LPUSH of the message kombu would have written."""
    import base64
    import json
    import socket
    import uuid

    from celery_app.factory import CeleryStepScheduler

    step_queue = engine.step_queue()  # "avtomatika.steps" in Redis mode
    original = CeleryStepScheduler.schedule_step
    origin = f"bench@{socket.gethostname()}"

    def schedule_step(
        self: Any, job_id: str, seq: int, delay: float = 0.0, *, blueprint: str = "", state: str = ""
    ) -> None:
        if delay > 0 or not engine.redis_url:
            return original(self, job_id, seq, delay, blueprint=blueprint, state=state)
        task_id = str(uuid.uuid4())
        kwargs = {"blueprint": blueprint, "state": state}
        body = json.dumps([[job_id, seq], kwargs, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
        message = {
            "body": base64.b64encode(body.encode()).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {
                "lang": "py", "task": "avtomatika.step", "id": task_id, "shadow": None, "eta": None,
                "expires": None, "group": None, "group_index": None, "retries": 0, "timelimit": [None, None],
                "root_id": task_id, "parent_id": None, "argsrepr": repr((job_id, seq)), "kwargsrepr": repr(kwargs),
                "origin": origin, "ignore_result": True, "replaced_task_nesting": 0, "stamped_headers": None,
                "stamps": {},
            },
            "properties": {
                "correlation_id": task_id, "reply_to": "", "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": step_queue}, "priority": 0,
                "body_encoding": "base64", "delivery_tag": str(uuid.uuid4()),
            },
        }  # fmt: skip
        engine.storage.client.lpush(step_queue, json.dumps(message))
        return None

    CeleryStepScheduler.schedule_step = schedule_step  # type: ignore[method-assign]


_apply_experiments()
