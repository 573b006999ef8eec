"""The demo's HTTP worker: serves `transcode_video` for `blueprints.demo` with the Python worker SDK.

Run it against any orchestrator: `avtomatika worker blueprints.demo_worker:worker --url http://host:8080`.
"""

import asyncio

from avtomatika.worker import InvalidInputError, TaskContext, Worker

worker = Worker(
    "demo-transcoder",
    "http://127.0.0.1:8080",
    token="secure-worker-token",
    resources={"cpu_cores": 2, "max_concurrent_tasks": 2},
    hot_cache=["transcode_video"],
    concurrency=2,
    heartbeat_interval=5.0,
    poll_timeout=5.0,
)


@worker.task("transcode_video")
async def transcode_video(params: dict, ctx: TaskContext) -> dict:
    if params["duration"] <= 0:
        raise InvalidInputError("duration must be positive")
    await ctx.progress(0.5, "transcoding")
    await asyncio.sleep(0.3)  # stands in for real work, so the demo shows the job waiting for the worker
    return {"output_path": f"/videos/{params['name']}.mp4"}
