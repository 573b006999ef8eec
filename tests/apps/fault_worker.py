"""An SDK worker for the fault-injection test: serves `fault-echo` quickly (several processes, one module)."""

from __future__ import annotations

import os
import time

from avtomatika.worker import TaskContext, Worker

worker = Worker(
    os.environ.get("TEST_WORKER_ID", "fault-worker"),
    os.environ.get("AVTOMATIKA_ORCHESTRATOR_URL", "http://127.0.0.1:8080"),
    token=os.environ.get("AVTOMATIKA_WORKER_TOKEN", ""),
    heartbeat_interval=0.3,
    poll_timeout=2.0,
    concurrency=2,
)


@worker.task("fault-echo")
def fault_echo(params: dict, ctx: TaskContext) -> dict:
    time.sleep(0.2)
    return {"echo": params.get("text"), "attempt": ctx.attempt}
