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
# The benchmark measures the engine, not a client rate limit: with limits on, the driver would measure the limit.
config.RATE_LIMITING_ENABLED = False

engine = OrchestratorEngine(MemoryStorage(), config)
engine.register_blueprint(linear)
