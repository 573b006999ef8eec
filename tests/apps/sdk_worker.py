"""An SDK worker for crash tests, configured from the environment (one module, several processes)."""

from __future__ import annotations

import os
import time

from avtomatika.worker import TaskContext, Worker

worker = Worker(
    os.environ.get("TEST_WORKER_ID", "sdk-worker"),
    os.environ.get("AVTOMATIKA_ORCHESTRATOR_URL", "http://127.0.0.1:8080"),
    token=os.environ.get("AVTOMATIKA_WORKER_TOKEN", ""),
    heartbeat_interval=0.3,
    poll_timeout=2.0,
)


@worker.task(os.environ.get("TEST_TASK_TYPE", "echo"))
def slow_echo(params: dict, ctx: TaskContext) -> dict:
    """Logs each run; the first attempt hangs long enough to be killed."""
    with open(params["log"], "a") as handle:
        handle.write(f"{worker.worker_id} attempt={ctx.attempt}\n")
    if ctx.attempt == 1:
        time.sleep(60)
    return {"done_by": worker.worker_id, "attempt": ctx.attempt}
