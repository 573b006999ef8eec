"""`avtomatika stack up` / `down`: every production role on loopback ports, a real job through it with an SDK
worker process, Flower's API with basic auth, and a throwaway PostgreSQL for history."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.services import BIN, ROOT, Process, need_binary, service_env, wait_until

pytestmark = pytest.mark.slow


def _settings(folder: Path) -> dict[str, str]:
    settings = {}
    for line in (folder / "stack.env").read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        settings[name] = shlex.split(value)[0] if value else ""
    return settings


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_stack_runs_a_job_with_an_sdk_worker_then_stops(tmp_path):
    need_binary("redis-server")
    if not Path("/usr/lib/postgresql/15/bin/initdb").exists():
        need_binary("initdb")
    folder = tmp_path / "stack"
    env = service_env()
    for name in ("CLIENT_TOKEN", "GLOBAL_WORKER_TOKEN", "CLIENTS_CONFIG_PATH", "WORKERS_CONFIG_PATH"):
        env.pop(name, None)
    command = [str(BIN / "avtomatika"), "stack", "--dir", str(folder)]
    up = subprocess.run(
        [*command, "up", "blueprints.demo:engine", "--port", "0", "--flower-port", "0", "--history"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    worker = None
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        settings = _settings(folder)
        api, flower = settings["AVTOMATIKA_URL"], settings["AVTOMATIKA_FLOWER_URL"]
        for shown in (api, flower, settings["CLIENT_TOKEN"], settings["GLOBAL_WORKER_TOKEN"], str(folder / "logs")):
            assert shown in up.stdout  # URLs, tokens and the log folder are printed
        assert api.startswith("http://127.0.0.1:") and flower.startswith("http://127.0.0.1:")

        worker_env = service_env(
            AVTOMATIKA_ORCHESTRATOR_URL=api, AVTOMATIKA_WORKER_TOKEN=settings["GLOBAL_WORKER_TOKEN"]
        )
        worker = Process([str(BIN / "avtomatika"), "worker", "blueprints.demo_worker:worker"], worker_env, "stack-sdk")
        headers = {"X-Avtomatika-Token": settings["CLIENT_TOKEN"]}
        created = httpx.post(f"{api}/api/v1/jobs/video", json={"name": "stack", "duration": 30}, headers=headers)
        assert created.status_code == 202, created.text
        job_id = created.json()["job_id"]

        def ended() -> dict | None:
            view = httpx.get(f"{api}/api/v1/jobs/{job_id}", headers=headers).json()
            return view if view["status"] in ("finished", "failed", "quarantined", "cancelled") else None

        view = wait_until(ended, 60, 0.2, what="the job through the stack")
        assert view["status"] == "finished", view
        assert view["state_history"]["output_path"] == "/videos/stack.mp4"  # the SDK worker's result

        # History is on and written to the stack's PostgreSQL (by the API and the Celery workers).
        def history() -> list | None:
            rows = httpx.get(f"{api}/api/v1/jobs/{job_id}/history", headers=headers).json()
            return rows if any(row["event_type"] == "job_finished" for row in rows) else None

        rows = wait_until(history, 30, 0.2, what="the job's history")
        assert rows[0]["event_type"] == "job_created"

        # Flower's API answers with the printed basic auth (and 401 without), and sees task events (-E).
        auth = tuple(settings["FLOWER_BASIC_AUTH"].split(":", 1))
        assert httpx.get(f"{flower}/api/workers", timeout=5).status_code == 401

        def both_workers() -> dict | None:
            workers = httpx.get(f"{flower}/api/workers?refresh=1", auth=auth, timeout=10).json()
            return workers if sum(name.startswith(("stack1@", "stack2@")) for name in workers) == 2 else None

        wait_until(both_workers, 30, 0.5, what="both Celery workers in Flower")
        tasks = wait_until(
            lambda: httpx.get(f"{flower}/api/tasks", auth=auth, timeout=5).json(), 20, what="flower's task events"
        )
        assert any(task.get("name") == "avtomatika.step" for task in tasks.values())

        logs = folder / "logs"
        assert {p.name for p in logs.iterdir()} >= {
            "redis.log",
            "api.log",
            "worker1.log",
            "worker2.log",
            "beat.log",
            "flower.log",
            "postgres.log",
        }
        assert "Using worker: gevent" in (logs / "api.log").read_text()
        assert any(p.name.startswith("appendonly") for p in (folder / "redis").rglob("*"))  # AOF on
        url = settings["HISTORY_DATABASE_URL"]
        assert url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
        import sqlalchemy

        database = sqlalchemy.create_engine(url)
        with database.connect() as connection:
            assert connection.execute(sqlalchemy.text("select 1")).scalar() == 1
        database.dispose()
    finally:
        if worker is not None:
            worker.stop()
        pids = []
        if (folder / "stack.json").exists():
            import json

            pids = [p["pid"] for p in json.loads((folder / "stack.json").read_text())["processes"]]
        down = subprocess.run([*command, "down"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert down.returncode == 0, down.stderr
    assert "stopped api" in down.stdout and "stopped postgres" in down.stdout
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids)
    assert not (folder / "stack.json").exists()


def test_stack_up_without_an_application_is_one_line(tmp_path):
    env = service_env()
    result = subprocess.run(
        [str(BIN / "avtomatika"), "stack", "--dir", str(tmp_path), "up"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "avtomatika stack: name the application: avtomatika stack up my_app:engine (or set AVTOMATIKA_APP)"
    )
    down = subprocess.run(
        [str(BIN / "avtomatika"), "stack", "--dir", str(tmp_path), "down"], capture_output=True, text=True, env=env
    )
    assert down.returncode == 0 and "nothing runs from" in down.stdout
