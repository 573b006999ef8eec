"""The composition tests reuse the worker tests' fixtures: the engine behind `orchestrator`, in-process."""

from tests.workers.conftest import _close_http_workers, engine, redis_engine  # noqa: F401
