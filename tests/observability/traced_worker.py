"""An SDK worker for the tracing test: serves the task type named by `TRACED_TASK_TYPE`."""

import os

from avtomatika.worker import Worker

# the URL and token come from AVTOMATIKA_ORCHESTRATOR_URL and AVTOMATIKA_WORKER_TOKEN (`avtomatika worker`)
worker = Worker(
    os.environ["TRACED_TASK_TYPE"], "http://127.0.0.1:1", "unused", poll_timeout=2.0, heartbeat_interval=5.0
)


@worker.task(os.environ["TRACED_TASK_TYPE"])
async def traced(params: dict) -> dict:
    return {"ok": True}
