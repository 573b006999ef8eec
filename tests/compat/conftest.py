"""The original's clients, from PyPI, in their own virtualenv: `avtomatika-worker` 1.0b3 (the worker SDK)."""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.services import ROOT, Process, wait_until

SDK = "avtomatika-worker==1.0b3"
VENVS = ROOT / ".compat-venvs"


def build_venv(name: str, requirement: str) -> Path:
    """A virtualenv with `requirement` installed, built once and reused (its deps clash with ours: aiohttp)."""
    VENVS.mkdir(exist_ok=True)
    home = VENVS / name
    python = home / "bin/python"
    with open(VENVS / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (home / ".ready").exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(home)], check=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", requirement],
                check=True,
            )
            (home / ".ready").write_text(requirement)
    return python


@pytest.fixture(scope="session")
def sdk_python() -> Path:
    """The interpreter of a virtualenv holding the original's worker SDK 1.0b3 from PyPI."""
    python = build_venv("avtomatika-worker-1.0b3", SDK)
    version = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('avtomatika-worker'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.strip() == "1.0b3"
    return python


class SdkWorker:
    """One SDK 1.0b3 worker process; `events()` reads what its handler logged."""

    def __init__(self, python: Path, script: str, base: str, worker_id: str, token: str, tmp: Path, **env: str):
        self.worker_id = worker_id
        self.events_file = tmp / f"{worker_id}.events"
        self.events_file.touch()
        environment = {
            "PATH": "/usr/bin:/bin",
            "PYTHONUNBUFFERED": "1",
            "ORCHESTRATOR_URL": base,
            "WORKER_ID": worker_id,
            "WORKER_TOKEN": token,
            "HEARTBEAT_INTERVAL": "1",
            "TASK_POLL_TIMEOUT": "5",
            "RESULT_RETRY_INITIAL_DELAY": "0.2",
            "TASK_FILES_DIR": str(tmp / "payloads"),
            "EVENTS": str(self.events_file),
            **env,
        }
        self.process = Process([str(python), str(ROOT / "tests/compat" / script)], environment, f"sdk-{worker_id}")

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.events_file.read_text().splitlines() if line.strip()]

    def wait_for(self, **match: Any) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            assert self.process.popen.poll() is None, self.process.output()
            return next((e for e in self.events() if all(e.get(k) == v for k, v in match.items())), None)

        return wait_until(found, 20, 0.05, what=f"SDK worker event {match}")

    def stop(self) -> None:
        self.process.stop()


@pytest.fixture
def sdk_workers(sdk_python: Path, tmp_path: Path) -> Iterator[Any]:
    """Start SDK 1.0b3 workers with `sdk_workers(base, worker_id, token, **env)`; all stopped afterwards."""
    started: list[SdkWorker] = []

    def start(base: str, worker_id: str, token: str, script: str = "sdk_1_0b3_worker.py", **env: str) -> SdkWorker:
        worker = SdkWorker(sdk_python, script, base, worker_id, token, tmp_path, **env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
