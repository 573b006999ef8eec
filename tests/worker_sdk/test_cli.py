"""`avtomatika.worker.cli:main`: loading a worker, overrides, and a real process stopped by SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from avtomatika.errors import AvtomatikaError
from avtomatika.worker.cli import load_worker, split_urls

from .stub import StubOrchestrator

ROOT = Path(__file__).resolve().parents[2]
CLI = "import sys; from avtomatika.worker.cli import main; sys.exit(main(sys.argv[1:]))"

WORKER_MODULE = textwrap.dedent(
    """
    import threading
    from avtomatika.worker import Worker

    worker = Worker("cli-worker", "http://127.0.0.1:1", token="from-code", heartbeat_interval=0.05,
                    poll_timeout=0.2, shutdown_grace_period=0.2, use_websocket=False)

    @worker.task("echo")
    def echo(params):
        return {"echo": params}

    @worker.task("hang")
    def hang(ctx):
        open("hang-started", "w").close()
        while not ctx.is_cancelled:
            threading.Event().wait(0.01)
    """
)


def test_load_worker_and_split_urls() -> None:
    worker = load_worker("tests.worker_sdk.example_worker")
    assert worker.worker_id == "image-worker-1"
    assert load_worker("tests.worker_sdk.example_worker:worker") is worker
    with pytest.raises(AvtomatikaError, match="cannot import"):
        load_worker("no_such_module_xyz:worker")
    with pytest.raises(AvtomatikaError, match="is not an avtomatika.worker.Worker"):
        load_worker("json:dumps")
    assert split_urls(["http://a,http://b", " http://c "]) == ["http://a", "http://b", "http://c"]


def start_cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    (tmp_path / "cli_worker_app.py").write_text(WORKER_MODULE)
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-c", CLI, *args], cwd=tmp_path, env=environ, stderr=subprocess.PIPE, text=True
    )


def test_bad_app_exits_with_2(tmp_path: Path) -> None:
    process = start_cli(tmp_path, "cli_worker_app:nothing")
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "module 'cli_worker_app' has no 'nothing'" in stderr


def test_cli_runs_the_worker_and_stops_gracefully_on_sigterm(tmp_path: Path, stub: StubOrchestrator) -> None:
    process = start_cli(tmp_path, "cli_worker_app", "--url", stub.url, env={"AVTOMATIKA_WORKER_TOKEN": stub.token})
    try:
        stub.wait_for(lambda: len(stub.registrations) == 1, timeout=30)
        stub.add_task("echo", {"a": 1}, task_id="t1")
        stub.add_task("hang", task_id="t2")
        stub.wait_for(lambda: len(stub.results) == 1 and (tmp_path / "hang-started").exists(), timeout=10)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert stub.registrations[0]["worker_id"] == "cli-worker"
    assert [body["result"] for body in stub.results] == [
        {"status": "success", "data": {"echo": {"a": 1}}},
        {
            "status": "failure",
            "data": {},
            "error": {"code": "TRANSIENT_ERROR", "message": "worker cli-worker shut down before the task finished"},
        },
    ]
    assert "from-code" not in stderr and stub.token not in stderr
