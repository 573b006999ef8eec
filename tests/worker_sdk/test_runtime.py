"""The worker runtime against a real HTTP stub orchestrator (tests/worker_sdk/stub.py)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from avtomatika.worker import TaskContext, Worker, WorkerError

from .conftest import make_worker, run, until
from .stub import StubOrchestrator, free_port


def results_for(stub: StubOrchestrator, task_id: str) -> list[dict[str, Any]]:
    return [body for body in stub.results if body["task_id"] == task_id]


def echo_worker(url: str | list[str], **options: Any) -> Worker:
    worker = make_worker(url, **options)

    @worker.task("echo")
    async def echo(params: dict[str, Any]) -> dict[str, Any]:
        return {"echo": params}

    return worker


def test_register_poll_run_and_post_the_result(stub: StubOrchestrator) -> None:
    worker = echo_worker(stub.url)

    async def scenario() -> None:
        await worker.start()
        assert stub.registrations == [worker.registration_body()]
        await until(stub, lambda: stub.polls >= 2)  # empty polls (204) just poll again
        assert stub.results == []
        stub.add_task("echo", {"n": 1}, task_id="t1", job_id="j1")
        await until(stub, lambda: len(stub.results) == 1)
        await worker.stop()

    run(scenario)
    assert stub.results == [
        {
            "job_id": "j1",
            "task_id": "t1",
            "worker_id": "w1",
            "result": {"status": "success", "data": {"echo": {"n": 1}}},
        }
    ]
    assert not worker.running


def test_heartbeats_report_status_once_then_refresh_the_ttl(stub: StubOrchestrator) -> None:
    worker = echo_worker(stub.url)

    async def scenario() -> None:
        await worker.start()
        await until(stub, lambda: len(stub.heartbeats) >= 3)
        await worker.stop()

    run(scenario)
    assert stub.heartbeats[0] == ("w1", {"status": "idle", "load": 0.0})
    assert stub.heartbeats[1] == ("w1", None)  # unchanged status: empty body


def test_heartbeat_cancel_tasks_cancels_the_running_task(stub: StubOrchestrator) -> None:
    worker = make_worker(stub.url)
    started = asyncio.Event()

    @worker.task("long")
    async def long(ctx: TaskContext) -> dict[str, Any]:
        started.set()
        while not ctx.is_cancelled:
            await asyncio.sleep(0.005)
        return {"partial": True}

    async def scenario() -> None:
        await worker.start()
        stub.add_task("long", task_id="t-long")
        await asyncio.wait_for(started.wait(), 5)
        await until(stub, lambda: ("w1", {"status": "busy", "load": 1.0}) in stub.heartbeats)
        with stub.lock:
            stub.cancel_tasks["w1"] = ["t-long", "t-unknown"]
        await until(stub, lambda: len(stub.results) == 1)
        await worker.stop()

    run(scenario)
    assert stub.results[0]["result"] == {"status": "cancelled", "data": {}}


def test_stale_result_409_is_not_retried(stub: StubOrchestrator) -> None:
    worker = echo_worker(stub.url)
    stub.result_statuses["t1"] = [409]

    async def scenario() -> None:
        await worker.start()
        stub.add_task("echo", task_id="t1")
        await until(stub, lambda: len(stub.results) == 1)
        stub.add_task("echo", task_id="t2")  # the worker goes on with the next task
        await until(stub, lambda: len(results_for(stub, "t2")) == 1)
        await worker.stop()

    run(scenario)
    assert len(results_for(stub, "t1")) == 1


def test_result_is_retried_after_5xx_and_429(stub: StubOrchestrator) -> None:
    worker = echo_worker(stub.url)
    stub.result_statuses["t1"] = [503, 429]

    async def scenario() -> None:
        await worker.start()
        stub.add_task("echo", task_id="t1")
        await until(stub, lambda: len(stub.results) == 3)
        await worker.stop()

    run(scenario)
    assert [body["result"]["status"] for body in stub.results] == ["success"] * 3


def test_other_4xx_on_result_is_not_retried(stub: StubOrchestrator) -> None:
    worker = echo_worker(stub.url)
    stub.result_statuses["t1"] = [400]

    async def scenario() -> None:
        await worker.start()
        stub.add_task("echo", task_id="t1")
        stub.add_task("echo", task_id="t2")
        await until(stub, lambda: len(results_for(stub, "t2")) == 1)
        await worker.stop()

    run(scenario)
    assert len(results_for(stub, "t1")) == 1


def test_failover_to_the_second_url_when_the_first_is_down(stub: StubOrchestrator) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    worker = echo_worker([down, stub.url])

    async def scenario() -> None:
        await worker.start()
        assert worker.urls.current == stub.url
        stub.add_task("echo", task_id="t1")
        await until(stub, lambda: len(stub.results) == 1)
        await worker.stop()

    run(scenario)
    assert len(stub.registrations) == 1


def test_reconnects_with_backoff_until_the_orchestrator_comes_up() -> None:
    port = free_port()
    stub = StubOrchestrator("worker-token", poll_timeout=0.2)
    worker = echo_worker(f"http://127.0.0.1:{port}")
    timer = threading.Timer(0.2, stub.start, kwargs={"port": port})

    async def scenario() -> None:
        timer.start()
        await worker.start()  # retries until the stub listens
        await worker.stop()

    try:
        run(scenario)
    finally:
        timer.join()
        stub.stop()
    assert len(stub.registrations) == 1


def test_registers_again_when_the_orchestrator_forgot_the_worker(stub: StubOrchestrator) -> None:
    worker = echo_worker(stub.url)

    async def scenario() -> None:
        await worker.start()
        stub.forget_workers()
        await until(stub, lambda: len(stub.registrations) == 2)
        stub.add_task("echo", task_id="t1")
        await until(stub, lambda: len(stub.results) == 1)
        await worker.stop()

    run(scenario)


def test_refused_token_fails_the_start(stub: StubOrchestrator) -> None:
    worker = echo_worker(stub.url, token="wrong")

    async def scenario() -> None:
        with pytest.raises(WorkerError, match="refused to register"):
            await worker.start()
        assert not worker.running

    run(scenario)


def test_graceful_stop_reports_an_unfinished_task_as_transient(stub: StubOrchestrator) -> None:
    worker = make_worker(stub.url, shutdown_grace_period=0.1)
    started = threading.Event()

    @worker.task("stuck")
    def stuck(ctx: TaskContext) -> dict[str, Any]:
        started.set()
        while not ctx.is_cancelled:  # a sync handler left in its thread stops once flagged
            ctx.task  # noqa: B018 - busy but cooperative
            threading.Event().wait(0.005)
        return {"never": "sent"}

    async def scenario() -> None:
        await worker.start()
        stub.add_task("stuck", task_id="t1")
        await asyncio.to_thread(started.wait, 5)
        await worker.stop()

    run(scenario)
    assert stub.results == [
        {
            "job_id": "job-t1",
            "task_id": "t1",
            "worker_id": "w1",
            "result": {
                "status": "failure",
                "data": {},
                "error": {"code": "TRANSIENT_ERROR", "message": "worker w1 shut down before the task finished"},
            },
        }
    ]


def test_graceful_stop_lets_a_task_finish_within_the_grace_period(stub: StubOrchestrator) -> None:
    worker = make_worker(stub.url, shutdown_grace_period=5)
    release = asyncio.Event()
    started = asyncio.Event()

    @worker.task("slow")
    async def slow() -> dict[str, Any]:
        started.set()
        await release.wait()
        return {"done": True}

    async def scenario() -> None:
        await worker.start()
        stub.add_task("slow", task_id="t1")
        await asyncio.wait_for(started.wait(), 5)
        stopping = asyncio.create_task(worker.stop())
        await asyncio.sleep(0.05)
        polls = stub.polls
        release.set()
        await stopping
        assert stub.polls == polls  # no polling while stopping

    run(scenario)
    assert [body["result"] for body in stub.results] == [{"status": "success", "data": {"done": True}}]


def test_concurrency_runs_tasks_at_once(stub: StubOrchestrator) -> None:
    worker = make_worker(stub.url, concurrency=2)
    both = asyncio.Barrier(2)

    @worker.task("pair")
    async def pair() -> dict[str, Any]:
        await asyncio.wait_for(both.wait(), 5)  # only passes if two tasks run together
        return {}

    async def scenario() -> None:
        await worker.start()
        stub.add_task("pair", task_id="t1")
        stub.add_task("pair", task_id="t2")
        await until(stub, lambda: len(stub.results) == 2)
        await worker.stop()

    run(scenario)
    assert {body["result"]["status"] for body in stub.results} == {"success"}
    assert stub.registrations[0]["resources"]["max_concurrent_tasks"] == 2


def test_websocket_progress_and_cancel_push(stub: StubOrchestrator) -> None:
    worker = make_worker(stub.url, use_websocket=True)
    started = asyncio.Event()

    @worker.task("watch")
    async def watch(ctx: TaskContext) -> dict[str, Any]:
        await ctx.progress(0.25, "a quarter")
        started.set()
        while not ctx.is_cancelled:
            await asyncio.sleep(0.005)
        return {}

    async def scenario() -> None:
        await worker.start()
        await until(stub, lambda: "w1" in stub.sockets)
        stub.add_task("watch", task_id="t1", job_id="j1")
        await asyncio.wait_for(started.wait(), 5)
        await until(stub, lambda: len(stub.progress) == 1)
        stub.push("w1", {"command": "cancel_task", "task_id": "t1", "job_id": "j1"})
        await until(stub, lambda: len(stub.results) == 1)
        await worker.stop()

    run(scenario)
    assert stub.progress == [{"event": "progress_update", "task_id": "t1", "progress": 0.25, "message": "a quarter"}]
    assert stub.results[0]["result"] == {"status": "cancelled", "data": {}}


def test_progress_without_websocket_is_dropped(stub: StubOrchestrator) -> None:
    worker = make_worker(stub.url)

    @worker.task("chatty")
    async def chatty(ctx: TaskContext) -> dict[str, Any]:
        await ctx.progress(0.5, "half")
        await ctx.heartbeat()
        return {"ok": True}

    async def scenario() -> None:
        await worker.start()
        stub.add_task("chatty", task_id="t1")
        await until(stub, lambda: len(stub.results) == 1)
        await worker.stop()

    run(scenario)
    assert stub.results[0]["result"] == {"status": "success", "data": {"ok": True}}
    assert stub.progress == []


@pytest.mark.parametrize("bad", ["\udcff", float("nan")], ids=["lone_surrogate", "nan"])
def test_a_result_that_is_not_json_is_reported_as_a_failure_and_the_slot_polls_on(stub: StubOrchestrator, bad) -> None:
    """`os.fsdecode` can give a lone surrogate: it used to kill the poll slot for good (issue 9, #4)."""
    worker = make_worker(stub.url, concurrency=1)

    @worker.task("path")
    async def path(params: dict[str, Any]) -> dict[str, Any]:
        return {"path": bad} if params.get("bad") else {"path": "ok"}

    async def scenario() -> None:
        await worker.start()
        stub.add_task("path", {"bad": True}, task_id="t-bad", job_id="j1")
        await until(stub, lambda: len(stub.results) == 1)
        stub.add_task("path", {}, task_id="t-good", job_id="j2")
        await until(stub, lambda: len(stub.results) == 2)
        await worker.stop()

    run(scenario)
    (bad_result,) = results_for(stub, "t-bad")
    assert bad_result["result"]["status"] == "failure"
    assert bad_result["result"]["error"]["code"] == "PERMANENT_ERROR"
    assert "JSON" in bad_result["result"]["error"]["message"]
    assert results_for(stub, "t-good")[0]["result"] == {"status": "success", "data": {"path": "ok"}}
