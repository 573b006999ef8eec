"""The original, avtomatika 1.0b4 from PyPI, side by side: its virtualenv, its topologies and ours through the seed.

- `original_python()` builds `.bench-venvs/original-1.0b4` once (`avtomatika[redis]==1.0b4`; gitignored) and
  returns its interpreter.
- `original_topology(logdir, redis=...)`: one process of `bench/apps/original_app.py`, `engine.run()` of 1.0b4 on
  MemoryStorage or on a fresh redis-server (1.0b4 runs every role in that one process either way).
- `seed_topology(logdir, app, redis=...)`: this project through the seed's entry point, `engine.run()`
  (`bench/apps/run_embedded.py`), on MemoryStorage or on a fresh redis-server.
- `original_ended(view)`: 1.0b4 never sets a terminal `status`; a job has ended once `current_state` is one of
  its terminal states (or it was quarantined).
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.driver import Topology
from bench.procs import ROOT, Service, free_port, service_env, start_redis, wait_http

REQUIREMENT = "avtomatika[redis]==1.0b4"
VENVS = ROOT / ".bench-venvs"
ORIGINAL_TERMINAL = frozenset({"finished", "failed", "error", "quarantined"})


def original_python(name: str = "original-1.0b4", requirement: str = REQUIREMENT) -> Path:
    """The interpreter of a virtualenv holding `requirement` from PyPI, built once and reused."""
    VENVS.mkdir(exist_ok=True)
    home = VENVS / name
    python = home / "bin" / "python"
    with open(VENVS / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (home / ".ready").exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(home)], check=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", requirement], check=True
            )
            (home / ".ready").write_text(requirement + "\n")
    return python


def original_ended(view: dict[str, Any]) -> str | None:
    """The end a 1.0b4 job view shows (its `current_state` when terminal, or `quarantined`), None while it runs."""
    if view.get("status") == "quarantined":
        return "quarantined"
    state = view.get("current_state")
    return str(state) if state in ORIGINAL_TERMINAL else None


@contextmanager
def original_topology(logdir: Path, *, redis: bool, env_extra: dict[str, str] | None = None) -> Iterator[Topology]:
    """1.0b4's `engine.run()` (aiohttp API, executor, watcher in one process) on memory or a fresh redis-server;
    `env_extra`: more environment for it (e.g. WORKER_TIMEOUT_SECONDS)."""
    python = original_python()
    services: list[Service] = []
    try:
        roles: dict[str, int] = {}
        env = service_env(API_HOST="127.0.0.1", API_PORT=str(free_port()), PYTHONPATH="", **(env_extra or {}))
        url = ""
        if redis:
            redis_service, url = start_redis(logdir)
            services.append(redis_service)
            roles["redis"] = redis_service.pid
            env["REDIS_URL"] = url + "/0"
        # The working directory must not be the repository: `import avtomatika` has to find the original.
        cwd = Path(tempfile.mkdtemp(prefix="bench-original-"))
        app = str(ROOT / "bench" / "apps" / "original_app.py")
        service = Service("original-redis" if redis else "original-memory", [str(python), app], env, logdir, cwd=cwd)
        services.append(service)
        roles = {"original": service.pid, **roles}
        base = f"http://127.0.0.1:{env['API_PORT']}"
        wait_http(service, base)
        settings = {"system": "avtomatika 1.0b4 (PyPI)", "storage": "redis" if redis else "memory"}
        yield Topology("original-redis" if redis else "original-memory", base, roles, settings, services,
                       url + "/0" if url else "")  # fmt: skip
    finally:
        for service in reversed(services):
            service.stop()


@contextmanager
def seed_topology(logdir: Path, *, redis: bool, app: str = "bench.apps.bench_app") -> Iterator[Topology]:
    """This project through `engine.run()` (`bench/apps/run_embedded.py`) on memory or a fresh redis-server."""
    services: list[Service] = []
    try:
        roles: dict[str, int] = {}
        env = service_env(API_HOST="127.0.0.1", API_PORT=str(free_port()), BENCH_APP=app)
        url = ""
        if redis:
            redis_service, url = start_redis(logdir)
            services.append(redis_service)
            roles["redis"] = redis_service.pid
            env["REDIS_URL"] = url + "/0"
        service = Service(
            "seed-redis" if redis else "seed-memory", [sys.executable, "-m", "bench.apps.run_embedded"], env, logdir
        )
        services.append(service)
        roles = {"seed": service.pid, **roles}
        base = f"http://127.0.0.1:{env['API_PORT']}"
        wait_http(service, base)
        settings = {"system": "this project, engine.run()", "storage": "redis" if redis else "memory", "app": app}
        yield Topology("seed-redis" if redis else "seed-memory", base, roles, settings, services,
                       url + "/0" if url else "")  # fmt: skip
    finally:
        for service in reversed(services):
            service.stop()
