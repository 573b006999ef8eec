"""The test harness runs handlers exactly as the runtime would, without a server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from avtomatika.worker import TaskContext, TransientError, Worker, WorkerError
from avtomatika.worker.testing import run_task, run_task_async

from .example_worker import worker


def test_async_handler_success_with_progress() -> None:
    run = run_task(worker, "resize", {"url": "s3://cat.png", "width": 64})
    assert run.result == {"status": "success", "data": {"thumbnail": "s3://cat.png.64.png"}}
    assert run.progress == [(0.5, "downloaded")]
    assert run.body == {
        "job_id": "job-1",
        "task_id": "task-1",
        "worker_id": "image-worker-1",
        "result": run.result,
    }


def test_invalid_input_error() -> None:
    run = run_task(worker, "resize", {"url": "s3://cat.png", "width": 0})
    assert run.result == {
        "status": "failure",
        "data": {},
        "error": {"code": "INVALID_INPUT_ERROR", "message": "width must be positive, got 0"},
    }


def test_sync_handler_with_params_injected_by_name_and_custom_status() -> None:
    run = run_task(worker, "classify", {"url": "s3://blurry.png"})
    assert run.result == {"status": "needs_review", "data": {"score": 0.3}}
    assert run.progress == [(1.0, "scored")]
    assert run_task(worker, "classify", {"url": "s3://sharp.png"}).status == "success"


def test_missing_param_is_invalid_input() -> None:
    run = run_task(worker, "classify", {})
    assert run.error == {
        "code": "INVALID_INPUT_ERROR",
        "message": "task 'classify' needs param 'url', which params lack",
    }


def test_failure_without_code_for_the_blueprint() -> None:
    run = run_task(worker, "detect_faces", {"empty": True})
    assert run.result == {"status": "failure", "data": {"faces": 0}, "error": {"message": "no face found"}}


def test_cancellation_is_reported_as_cancelled() -> None:
    run = run_task(worker, "transcode", {"chunks": 10}, cancel_after_progress=2)
    assert run.result == {"status": "cancelled", "data": {}}
    assert [message for _, message in run.progress] == ["chunk 1", "chunk 2"]
    assert run_task(worker, "transcode", {"chunks": 10}, cancelled=True).progress == []


def test_context_fields_and_injected_names() -> None:
    probe = Worker("probe", "http://localhost:8080", "t")
    seen: dict[str, Any] = {}

    @probe.task("probe")
    async def handler(
        context: TaskContext, job_id: str, task_id: str, task_type: str, attempt: int, deadline: float, **_: Any
    ) -> None:
        await context.heartbeat()
        seen.update(job_id=job_id, task_id=task_id, task_type=task_type, attempt=attempt, deadline=deadline)
        seen["tracing"] = context.tracing_context
        seen["priority"] = context.priority

    run = run_task(
        probe, "probe", {}, job_id="j9", task_id="t9", attempt=3, deadline=12.5, priority=2, tracing_context={"a": 1}
    )
    assert run.result == {"status": "success", "data": {}}
    assert run.heartbeats == 1
    assert seen == {
        "job_id": "j9",
        "task_id": "t9",
        "task_type": "probe",
        "attempt": 3,
        "deadline": 12.5,
        "tracing": {"a": 1},
        "priority": 2,
    }


def test_unexpected_exception_and_bad_progress_are_transient() -> None:
    probe = Worker("probe", "http://localhost:8080", "t")

    @probe.task("crash")
    def crash(params: dict[str, Any]) -> None:
        raise ZeroDivisionError("division by zero")

    @probe.task("bad_progress")
    async def bad_progress(ctx: TaskContext) -> None:
        await ctx.progress(1.5)

    @probe.task("flaky")
    async def flaky() -> None:
        raise TransientError("model server warming up")

    assert run_task(probe, "crash").error == {
        "code": "TRANSIENT_ERROR",
        "message": "ZeroDivisionError: division by zero",
    }
    error = run_task(probe, "bad_progress").error
    assert error is not None and error["message"].startswith("ValueError: progress must be a number between 0 and 1")
    assert run_task(probe, "flaky").error == {"code": "TRANSIENT_ERROR", "message": "model server warming up"}


def test_sync_api_from_an_async_handler_is_refused() -> None:
    probe = Worker("probe", "http://localhost:8080", "t")

    @probe.task("wrong")
    async def wrong(ctx: TaskContext) -> None:
        ctx.progress_sync(0.1)

    error = run_task(probe, "wrong").error
    assert error is not None and "use await in async ones" in error["message"]


def test_async_variant_and_unknown_task_type() -> None:
    async def scenario() -> None:
        run = await run_task_async(worker, "detect_faces", {})
        assert run.result == {"status": "success", "data": {"faces": 1}}

    asyncio.run(scenario())
    with pytest.raises(WorkerError, match="no handler for 'nope'"):
        run_task(worker, "nope")
