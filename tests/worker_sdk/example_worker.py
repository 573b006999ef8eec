"""An example worker used by the harness tests, the CLI test and docs/worker-sdk.md."""

from __future__ import annotations

import time
from typing import Any

from avtomatika.worker import InvalidInputError, TaskContext, TaskFailure, TaskResult, Worker

worker = Worker(
    "image-worker-1",
    ["http://orchestrator-a:8080", "http://orchestrator-b:8080"],
    token="change-me",
    resources={"gpu_info": {"model": "RTX 4090", "vram_gb": 24}, "cpu_cores": 8},
    installed_models=[{"name": "sdxl", "version": "1.0"}],
    cost_per_second=0.002,
    hot_cache=["resize"],
    capabilities={"formats": ["png", "jpeg"]},
    concurrency=2,
)


@worker.task("resize")
async def resize(params: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Async handler: `params` and `ctx` are injected by name."""
    width = params.get("width", 256)
    if width <= 0:
        raise InvalidInputError(f"width must be positive, got {width}")
    await ctx.progress(0.5, "downloaded")
    return {"thumbnail": f"{params['url']}.{width}.png"}


@worker.task("classify")
def classify(url: str, ctx: TaskContext, threshold: float = 0.5) -> TaskResult:
    """Sync handler (runs in a thread): params keys are injected by name too."""
    score = 0.3 if "blurry" in url else 0.9
    ctx.progress_sync(1.0, "scored")
    if score < threshold:
        return TaskResult("needs_review", {"score": score})
    return TaskResult("success", {"score": score})


@worker.task("detect_faces")
def detect_faces(params: dict[str, Any]) -> dict[str, Any]:
    """A failure the blueprint handles (status `failure`, no error code)."""
    if params.get("empty"):
        raise TaskFailure("no face found", data={"faces": 0})
    return {"faces": 1}


@worker.task("transcode")
def transcode(params: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """A long task that checks for cancellation between chunks."""
    done = 0
    for _chunk in range(params.get("chunks", 3)):
        if ctx.is_cancelled:
            break
        time.sleep(0.001)
        done += 1
        ctx.progress_sync(done / params.get("chunks", 3), f"chunk {done}")
    return {"chunks_done": done}
