"""Stopping `engine.run()` (the embedded default) while an SDK worker holds a long-poll and a WebSocket.

Held requests used to keep the HTTP server's threads, so Ctrl-C waited for the poll timeout (30 s by default)
before the process ended, and so did the end of `avtomatika demo`; SIGTERM ended the process at once without
stopping anything. Now both signals stop the roles, and held requests answer first.
"""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
import pytest

from tests.services import BIN, Process, free_port, service_env, wait_until

POLL_TIMEOUT = 30  # the product default: a stop that waited for the held poll would take this long


def _worker_holds_a_poll(worker: Process) -> bool:
    output = worker.output()
    return "registered at" in output and "command channel connected" in output


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_run_stops_promptly_while_a_worker_holds_a_poll_and_a_websocket(signum: int) -> None:
    port = free_port()
    env = service_env(API_PORT=str(port), WORKER_POLL_TIMEOUT_SECONDS=str(POLL_TIMEOUT))
    env.pop("GLOBAL_WORKER_TOKEN")  # the demo worker sends the public default token
    # `Process` starts a new session, so the child's SIGINT is not ignored as a shell's background job's is
    run = Process([str(BIN / "avtomatika"), "run", "blueprints.demo:engine"], env, "stop-run")
    worker = None
    try:
        wait_until(lambda: "listening on" in run.output(), 30, what="the embedded server")
        worker_env = service_env(AVTOMATIKA_ORCHESTRATOR_URL=f"http://127.0.0.1:{port}")
        worker = Process([str(BIN / "avtomatika"), "worker", "blueprints.demo_worker:worker"], worker_env, "stop-sdk")
        wait_until(lambda: _worker_holds_a_poll(worker), 30, what="the SDK worker's poll and WebSocket")
        time.sleep(0.5)  # the poll is now held by a server thread
        started = time.monotonic()
        run.popen.send_signal(signum)
        returncode = run.popen.wait(POLL_TIMEOUT + 10)
        took = time.monotonic() - started
    finally:
        if worker is not None:
            worker.stop()
        run.stop()
    assert returncode == 0, run.output()
    assert "interrupted, stopping" in run.output()
    assert took < POLL_TIMEOUT / 3, f"the stop took {took:.1f} s: it waited for the held poll"


def test_a_restarted_engine_holds_long_polls_again(tmp_path) -> None:
    """`stop()` makes held requests answer; `start()` again must not leave them answering at once."""
    from avtomatika import OrchestratorEngine
    from avtomatika.config import Config
    from avtomatika.storage import MemoryStorage
    from blueprints.linear import linear

    config = Config({"API_HOST": "127.0.0.1", "API_PORT": "0", "WORKER_POLL_TIMEOUT_SECONDS": "2"})
    engine = OrchestratorEngine(MemoryStorage(), config)
    engine.register_blueprint(linear)
    headers = {"X-Worker-Token": config.GLOBAL_WORKER_TOKEN}

    async def poll_seconds() -> float:
        base = f"http://127.0.0.1:{engine.port}"
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as http:
            record = {"worker_id": "restart-w", "supported_tasks": ["nothing_queued"]}
            assert (await http.post("/_worker/workers/register", json=record)).status_code == 200
            started = time.monotonic()
            assert (await http.get("/_worker/workers/restart-w/tasks/next")).status_code == 204
            return time.monotonic() - started

    async def scenario() -> tuple[float, float]:
        await engine.start()
        first = await poll_seconds()
        await engine.stop()
        await engine.start()
        try:
            return first, await poll_seconds()
        finally:
            await engine.stop()

    first, again = asyncio.run(scenario())
    assert first >= 1.5 and again >= 1.5, (first, again)  # both held for the poll timeout (2 s)
