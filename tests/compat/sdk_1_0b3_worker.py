"""A worker written against the original's SDK, `avtomatika-worker` 1.0b3 from PyPI (run by its own virtualenv).

Environment: ORCHESTRATOR_URL, WORKER_ID, WORKER_TOKEN, WORKER_ENABLE_WEBSOCKETS (the SDK's own settings),
plus TASK_TYPE (the handler name) and EVENTS (a file where each handler call appends one JSON line).
The task's `params["text"]` says what to do; every outcome is an answer the SDK itself builds or passes on.
"""

import asyncio
import json
import os

from avtomatika_worker import Worker

TASK_TYPE = os.environ["TASK_TYPE"]
EVENTS = os.environ["EVENTS"]
worker = Worker(worker_type="compat-cpu")
failed_once: set[str] = set()


def log(**event):
    with open(EVENTS, "a") as handle:
        handle.write(json.dumps(event) + "\n")


@worker.task(TASK_TYPE)
async def handle(params, **kwargs):
    mode = params.get("text", "success")
    job_id = kwargs["job_id"]
    log(event="started", job_id=job_id, task_id=kwargs["task_id"], mode=mode)
    if mode == "success":
        return {"status": "success", "data": {"echo": mode, "by": os.environ["WORKER_ID"]}}
    if mode == "needs_review":
        return {"status": "needs_review", "data": {"reason": "blurry"}}
    if mode == "unknown_status":
        return {"status": "weird"}
    if mode == "failure":
        return {"status": "failure", "error": {"message": "the file is empty"}}
    if mode == "permanent":
        return {"status": "failure", "error": {"code": "PERMANENT_ERROR", "message": "codec missing"}}
    if mode == "invalid":
        return {"status": "failure", "error": {"code": "INVALID_INPUT_ERROR", "message": "bad path"}}
    if mode == "raises":  # the SDK turns an exception into a TRANSIENT_ERROR result
        raise RuntimeError("the GPU fell off the bus")
    if mode == "flaky_once":
        if job_id not in failed_once:
            failed_once.add(job_id)
            raise RuntimeError("first attempt fails")
        return {"status": "success", "data": {"recovered": True}}
    if mode == "progress_then_sleep":
        await kwargs["send_progress"](kwargs["task_id"], job_id, 0.5, "half way")
        mode = "sleep"
    if mode == "sleep":
        try:
            await asyncio.sleep(float(params.get("seconds", 8)))
        except asyncio.CancelledError:
            log(event="cancelled", job_id=job_id, task_id=kwargs["task_id"])
            raise
        log(event="finished", job_id=job_id, task_id=kwargs["task_id"])
        return {"status": "success", "data": {"slept": True}}
    return {"status": "failure", "error": {"code": "PERMANENT_ERROR", "message": f"unknown mode {mode}"}}


if __name__ == "__main__":
    worker.run()
