"""Real services for tests: redis-server, Celery worker and API processes, each on a free port."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests import suite_record

ROOT = Path(__file__).resolve().parent.parent
GLOBAL_WORKER_TOKEN = "global-worker-token-for-tests"
QUEUES = "avtomatika.steps,avtomatika.sweep,avtomatika.tasks.double,avtomatika.tasks.sleepy,avtomatika.tasks.edgy"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


OPT_OUT = "AVTOMATIKA_TESTS_SKIP_MISSING"


def need_binary(name: str) -> str:
    """The binary's path. A missing binary fails the test, so a green run never hides skipped integration
    tests; whoever explicitly sets AVTOMATIKA_TESTS_SKIP_MISSING=1 gets a skip instead."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get(OPT_OUT) == "1":
            pytest.skip(f"{name} is not installed ({OPT_OUT}=1)")
        pytest.fail(f"{name} is not installed (install it, or set {OPT_OUT}=1 to skip what needs it)")
    return path


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Process:
    """A child process with its output in a log file; `kill()` sends SIGKILL to its whole group."""

    def __init__(self, args: list[str], env: dict[str, str], name: str) -> None:
        self.name = name
        self.log = tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False)
        self.popen = subprocess.Popen(
            args, env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        if suite_record.RECORD is not None and Path(args[0]).parent == BIN:  # the project's own commands
            suite_record.RECORD.process_logs.append(Path(self.log.name))

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def kill(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@contextmanager
def redis_server() -> Iterator[str]:
    binary = need_binary("redis-server")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import redis

        client = redis.Redis(port=port)
        wait_until(lambda: _ping(client), 10, what="redis-server")
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def _ping(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


def service_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "AVTOMATIKA_", "PYTEST_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        CLIENTS_CONFIG_PATH=str(ROOT / "tests/apps/clients.toml"),
        WORKERS_CONFIG_PATH=str(ROOT / "tests/apps/workers.toml"),
        GLOBAL_WORKER_TOKEN=GLOBAL_WORKER_TOKEN,
        WORKER_POLL_TIMEOUT_SECONDS="2",
    )
    env.update(extra)
    return env


def start_celery_worker(env: dict[str, str], name: str = "worker", concurrency: int = 2, pool: str = "prefork"):
    args = [
        str(BIN / "celery"),
        "-A",
        "celery_app",
        "worker",
        "-E",
        "-P",
        pool,
        "-c",
        str(concurrency),
        "-Q",
        QUEUES,
        "-n",
        f"{name}-{free_port()}@%h",
        "--without-mingle",
        "--without-gossip",
        "-l",
        "INFO",
    ]
    proc = Process(args, env, name)
    wait_until(lambda: "ready." in proc.output() or proc.popen.poll() is not None, 30, what="celery worker")
    assert proc.popen.poll() is None, proc.output()
    return proc


def wait_for_status(proc: Process, base: str, what: str = "API server") -> None:
    """Wait until `base` answers `/_public/status` with 200 (fails at once if the process exited)."""

    def up() -> bool:
        if proc.popen.poll() is not None:
            raise AssertionError(proc.output())
        try:
            return httpx.get(base + "/_public/status", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, 30, what=what)


def start_api(
    env: dict[str, str], workers: int = 1, port: int | None = None, config: str | None = None
) -> tuple[Process, str]:
    """gunicorn (gevent) serving the API; `config`: a gunicorn config file (e.g. deploy/gunicorn.conf.py)."""
    port = port or free_port()
    args = [
        str(BIN / "gunicorn"),
        *(["-c", config] if config else []),
        "-k",
        "gevent",
        "-w",
        str(workers),
        "-b",
        f"127.0.0.1:{port}",
        "--graceful-timeout",
        "2",
        "--no-control-socket",  # tests run many gunicorns at once; the default socket path is shared
        "webapi.wsgi:app",
    ]
    proc = Process(args, env, "api")
    base = f"http://127.0.0.1:{port}"
    wait_for_status(proc, base)
    return proc, base


def postgres_bin(name: str) -> str:
    """A PostgreSQL server binary (initdb, pg_ctl); a missing PostgreSQL fails the test, never skips it."""
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    path = str(found[-1]) if found else shutil.which(name)
    if path is None:
        pytest.fail(f"PostgreSQL's {name} is not installed (apt-get install postgresql; .ci/run does it)")
    return path


class Postgres:
    """A throwaway PostgreSQL cluster on a free port, owned by the `postgres` user (it refuses to run as root)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="avtomatika-pg-")
        self.data = os.path.join(self.dir, "data")
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(postgres_bin("initdb"), "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as_postgres, *args], check=True, capture_output=True, cwd=self.dir, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(postgres_bin("pg_ctl"), "-D", self.data, "-o", options, "-l", f"{self.dir}/log", "-w", "start")

    def stop(self) -> None:
        self._run(postgres_bin("pg_ctl"), "-D", self.data, "-m", "fast", "-w", "stop")

    def create_database(self, name: str) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[Postgres]:
    """A running throwaway cluster; stopped and deleted afterwards."""
    server = Postgres()
    server.start()
    try:
        yield server
    finally:
        with suppress(subprocess.CalledProcessError):  # already stopped by a test
            server.stop()
        server.remove()


class WebhookReceiver:
    """A local completion-webhook receiver: answers `statuses` in turn (then 200); keeps each accepted JSON body
    (`accepted`), each attempt as (delivery id, status) (`attempts`) and each request's headers and body (`raw`)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.accepted: list[dict] = []
        self.attempts: list[tuple[str, int]] = []
        self.raw: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                text = self.rfile.read(int(self.headers["Content-Length"])).decode()
                receiver.raw.append(str(self.headers) + text)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                receiver.attempts.append((self.headers["X-Avtomatika-Delivery"], status))
                if status == 200:
                    receiver.accepted.append(json.loads(text))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/done"
