"""The engine every benchmark process loads: `AVTOMATIKA_APP=bench.apps.bench_app:engine`.

With `REDIS_URL` set (Redis topology) the engine uses Redis for state, broker and results; without it it is the
embedded default (MemoryStorage, in-memory Celery transport).
"""

from __future__ import annotations

import os

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
    "no-rate-limit": "RATE_LIMITING_ENABLED off (no rate-limit counting at all)",
    "events": "Celery task events on (worker -E and the API's task-sent events), as when Flower is deployed",
    "no-metrics": "orchestration metrics not written to Redis (measures their cost)",
}


def _apply_experiments() -> None:
    unknown = EXPERIMENTS - set(KNOWN_EXPERIMENTS)
    if unknown:
        raise SystemExit(f"unknown BENCH_EXPERIMENTS {sorted(unknown)}; known: {sorted(KNOWN_EXPERIMENTS)}")
    if "no-rate-limit" in EXPERIMENTS:
        config.RATE_LIMITING_ENABLED = False
    if "events" in EXPERIMENTS:
        config.CELERY_TASK_EVENTS = True
    if "no-metrics" in EXPERIMENTS:
        from avtomatika.metrics import OrchestrationMetrics

        OrchestrationMetrics._add = lambda self, amounts: None  # type: ignore[method-assign]


_apply_experiments()
