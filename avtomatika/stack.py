"""`avtomatika stack up APP` / `stack down`: every production role of an application on this machine.

On loopback ports: redis-server with its append-only file on, the API under gunicorn (gevent) with
`deploy/gunicorn.conf.py`, two Celery workers with task events (`-E`), beat, Flower (its API behind basic
auth, the way docs/operations.md describes) and, with `--history`, a throwaway PostgreSQL cluster. Each
process logs to `<dir>/logs/<role>.log`; `<dir>/stack.json` records what runs, `<dir>/stack.env` the settings
to `source` in another shell. `stack down` stops what `stack up` started in that directory.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from .errors import ConfigError

DIR_ENV = "AVTOMATIKA_STACK_DIR"
DEFAULT_DIR = ".avtomatika-stack"
STACK_ENV = (
    f"{DIR_ENV} (default ./{DEFAULT_DIR}), AVTOMATIKA_APP (when APP is not given), CLIENT_TOKEN and "
    "GLOBAL_WORKER_TOKEN (generated when unset); every other setting is passed on to the processes"
)
GUNICORN_CONF = Path(__file__).resolve().parent.parent / "deploy" / "gunicorn.conf.py"
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port(preferred: int = 0) -> int:
    """`preferred` when it is free on 127.0.0.1, else any free port."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise ConfigError("no free port on 127.0.0.1")  # pragma: no cover


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `avtomatika stack`."""
    parser = argparse.ArgumentParser(
        prog="avtomatika stack",
        description="Start or stop every production role of an application on loopback ports.",
        epilog=f"environment: {STACK_ENV}",
    )
    parser.add_argument("--dir", help=f"state and log folder (default: ${DIR_ENV}, else ./{DEFAULT_DIR})")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = actions.add_parser("up", help="start redis-server, the API, two Celery workers, beat and Flower")
    up.add_argument("app", nargs="?", help="module:attr of the engine (default: $AVTOMATIKA_APP)")
    up.add_argument("--port", type=int, default=8080, help="API port (default 8080; another one when taken)")
    up.add_argument("--flower-port", type=int, default=5555, help="Flower port (default 5555; another when taken)")
    up.add_argument(
        "--history",
        action="store_true",
        help="also start a throwaway PostgreSQL cluster for job history (implied by HISTORY_ENABLED=true without "
        "HISTORY_DATABASE_URI)",
    )
    actions.add_parser("down", help="stop what `stack up` started in the folder")
    return parser


def _executable(name: str) -> str:
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise ConfigError(f"{name} is not installed (pip install 'avtomatika[all]', or apt-get install {name})")
    return found


def _spawn(args: list[str], env: Mapping[str, str], log: Path) -> int:
    with log.open("ab") as out:
        process = subprocess.Popen(
            args, env=dict(env), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    return process.pid


def _wait(what: str, ready: Callable[[], bool], pid: int | None, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if pid is not None and _exited(pid):
            break
        time.sleep(0.1)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:]) if log.exists() else ""
    raise ConfigError(f"{what} did not start; see {log}:\n{tail}")


def _exited(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return not _alive(pid)
    return finished == pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover
        return True
    return True


def _http_ok(url: str, auth: tuple[str, str] | None = None) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=1, auth=auth).status_code == 200
    except httpx.HTTPError:
        return False


def _log_says(log: Path, text: str) -> Callable[[], bool]:
    return lambda: log.exists() and text in log.read_text(errors="replace")


def _redis_up(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def _start_postgres(folder: Path, env: dict[str, str]) -> dict[str, Any]:
    """A throwaway cluster, trust auth, loopback only. As root it runs as `postgres` (PostgreSQL refuses root),
    in a directory of its own that `postgres` can reach; `logs/postgres.log` links to its log."""
    port = free_port()
    run_as: list[str] = []
    if os.geteuid() == 0:
        home = Path(tempfile.mkdtemp(prefix="avtomatika-stack-pg-"))
        shutil.chown(home, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    else:
        home = folder / "postgres"
        home.mkdir(exist_ok=True)
    data, log = home / "data", home / "postgres.log"
    initdb = str(PG_BIN / "initdb") if (PG_BIN / "initdb").exists() else _executable("initdb")
    pg_ctl = str(Path(initdb).parent / "pg_ctl")
    _run([*run_as, initdb, "-D", str(data), "-A", "trust"])
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off"
    _run([*run_as, pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "start"])
    link = folder / "logs" / "postgres.log"
    link.unlink(missing_ok=True)
    link.symlink_to(log)
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    env["HISTORY_DATABASE_URL"] = env["HISTORY_DATABASE_URI"] = url
    return {
        "role": "postgres",
        "stop": [*run_as, pg_ctl, "-D", str(data), "-m", "fast", "stop"],
        "url": url,
        "home": str(home),
    }


def _run(args: list[str]) -> None:
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip().splitlines()[-5:]
        raise ConfigError(f"{' '.join(args)} failed: {' / '.join(output)}")


def up(app: str, folder: Path, port: int, flower_port: int, history: bool, out: TextIO) -> int:
    """Start the stack; print its URLs, tokens and log folder. Stops what it started when a role fails."""
    from .jobs_cli import progress

    if (folder / "stack.json").exists():
        raise ConfigError(f"a stack runs from {folder} already: avtomatika stack --dir {folder} down")
    if not GUNICORN_CONF.exists():
        raise ConfigError(f"{GUNICORN_CONF} is missing: run the stack from a source checkout of avtomatika")
    logs = folder / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (folder / "redis").mkdir(exist_ok=True)
    redis_port, api_port, flower_port = free_port(), free_port(port), free_port(flower_port)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    flower_auth = ("avtomatika", secrets.token_urlsafe(12))
    env = dict(os.environ)
    env.update(
        AVTOMATIKA_APP=app,
        REDIS_URL=redis_url,
        API_HOST="127.0.0.1",
        API_PORT=str(api_port),
        CLIENT_TOKEN=os.environ.get("CLIENT_TOKEN") or secrets.token_urlsafe(24),
        GLOBAL_WORKER_TOKEN=os.environ.get("GLOBAL_WORKER_TOKEN") or secrets.token_urlsafe(24),
        FLOWER_BASIC_AUTH=":".join(flower_auth),
        PYTHONPATH=os.pathsep.join(p for p in (os.getcwd(), os.environ.get("PYTHONPATH", "")) if p),
        PYTHONUNBUFFERED="1",
    )
    env.pop("REDIS_HOST", None)
    celery = _executable("celery")
    roles: list[tuple[str, list[str], Callable[[], bool]]] = [
        (
            "redis",
            [
                _executable("redis-server"),
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(folder / "redis"),
                "--appendonly",
                "yes",
                "--save",
                "",
            ],
            lambda: _redis_up(redis_url),
        ),
        (
            "api",
            [_executable("gunicorn"), "-c", str(GUNICORN_CONF), "webapi.wsgi:app"],
            lambda: _http_ok(f"http://127.0.0.1:{api_port}/_public/status"),
        ),
    ]
    for number in (1, 2):
        log = logs / f"worker{number}.log"
        roles.append(
            (
                f"worker{number}",
                [celery, "-A", "celery_app", "worker", "-E", "-l", "INFO", "-c", "2", "-n", f"stack{number}@%h"],
                _log_says(log, "ready."),
            )
        )
    beat_log = logs / "beat.log"
    roles.append(
        (
            "beat",
            [celery, "-A", "celery_app", "beat", "-l", "INFO", "-s", str(folder / "celerybeat-schedule")],
            _log_says(beat_log, "beat: Starting"),
        )
    )
    roles.append(
        (
            "flower",
            [celery, "-A", "celery_app", "flower", f"--port={flower_port}", "--address=127.0.0.1"],
            lambda: _http_ok(f"http://127.0.0.1:{flower_port}/api/workers", flower_auth),
        )
    )
    state: dict[str, Any] = {"app": app, "processes": [], "postgres": None}
    try:
        if history:
            state["postgres"] = _start_postgres(folder, env)
            _save(folder, state)
        # Redis first (every other role connects to it at start), then the others at once.
        started: list[tuple[str, Callable[[], bool], int]] = []
        for index, (role, args, ready) in enumerate(roles):
            pid = _spawn(args, env, logs / f"{role}.log")
            state["processes"].append({"role": role, "pid": pid})
            _save(folder, state)
            started.append((role, ready, pid))
            if index == 0:
                _wait(role, ready, pid, logs / f"{role}.log")
        for role, ready, pid in progress(started, "starting the stack"):
            _wait(role, ready, pid, logs / f"{role}.log")
    except BaseException:
        down(folder, io.StringIO())
        raise
    (folder / "stack.env").write_text(
        "".join(f"export {name}={env[name]}\n" for name in _EXPORTED if name in env)
        + f"export AVTOMATIKA_URL=http://127.0.0.1:{api_port}\nexport AVTOMATIKA_CLIENT_TOKEN={env['CLIENT_TOKEN']}\n"
        + f"export AVTOMATIKA_ORCHESTRATOR_URL=http://127.0.0.1:{api_port}\n"
        + f"export AVTOMATIKA_FLOWER_URL=http://127.0.0.1:{flower_port}\n"
        + f"export AVTOMATIKA_WORKER_TOKEN={env['GLOBAL_WORKER_TOKEN']}\n"
    )
    os.chmod(folder / "stack.env", 0o600)
    lines = [
        f"avtomatika stack up: {app} runs from {folder}",
        f"  API        http://127.0.0.1:{api_port}   (docs: http://127.0.0.1:{api_port}/_public/docs)",
        f"  Flower     http://127.0.0.1:{flower_port}   (user {flower_auth[0]}, password {flower_auth[1]}; "
        f"API: curl -u {flower_auth[0]}:{flower_auth[1]} http://127.0.0.1:{flower_port}/api/workers)",
        f"  Redis      {redis_url}   (append-only file in {folder / 'redis'})",
    ]
    if state["postgres"]:
        lines.append(f"  PostgreSQL {state['postgres']['url']}   (HISTORY_DATABASE_URL)")
    lines += [
        f"  client token  {env['CLIENT_TOKEN']}   (header X-Avtomatika-Token)",
        f"  worker token  {env['GLOBAL_WORKER_TOKEN']}   (header X-Worker-Token)",
        f"  logs       {logs}",
        f"  settings   source {folder / 'stack.env'}",
        "             (then: avtomatika jobs list, or avtomatika worker my_worker:worker)",
        f"stop it with: avtomatika stack --dir {folder} down",
    ]
    print("\n".join(lines), file=out)
    return 0


_EXPORTED = (
    "AVTOMATIKA_APP",
    "REDIS_URL",
    "CLIENT_TOKEN",
    "GLOBAL_WORKER_TOKEN",
    "FLOWER_BASIC_AUTH",
    "HISTORY_DATABASE_URL",
    "HISTORY_DATABASE_URI",
)


def _save(folder: Path, state: dict[str, Any]) -> None:
    (folder / "stack.json").write_text(json.dumps(state, indent=2))


def down(folder: Path, out: TextIO) -> int:
    """Stop every process `up` started from `folder` (TERM, then KILL after 15 s) and its PostgreSQL."""
    path = folder / "stack.json"
    if not path.exists():
        print(f"avtomatika stack: nothing runs from {folder}", file=out)
        return 0
    state = json.loads(path.read_text())
    processes = list(reversed(state.get("processes", [])))
    for entry in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(entry["pid"], signal.SIGTERM)
    deadline = time.monotonic() + 15
    for entry in processes:
        while time.monotonic() < deadline and not _exited(entry["pid"]):
            time.sleep(0.1)
        if not _exited(entry["pid"]):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(entry["pid"], signal.SIGKILL)
        print(f"stopped {entry['role']} (pid {entry['pid']})", file=out)
    postgres = state.get("postgres")
    if postgres:
        subprocess.run(postgres["stop"], capture_output=True)
        if not Path(postgres["home"]).is_relative_to(folder):  # a throwaway cluster outside the folder
            shutil.rmtree(postgres["home"], ignore_errors=True)
        print("stopped postgres", file=out)
    path.unlink()
    return 0


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    """Entry point of `avtomatika stack`; 2 for a configuration error (one line)."""
    args = build_parser().parse_args(argv)
    folder = Path(args.dir or os.environ.get(DIR_ENV) or DEFAULT_DIR).resolve()
    try:
        if args.action == "down":
            return down(folder, out)
        app = args.app or os.environ.get("AVTOMATIKA_APP")
        if not app:
            raise ConfigError("name the application: avtomatika stack up my_app:engine (or set AVTOMATIKA_APP)")
        wants_history = os.environ.get("HISTORY_ENABLED", "").lower() in ("1", "true", "yes", "on")
        history = args.history or (wants_history and not os.environ.get("HISTORY_DATABASE_URI"))
        return up(app, folder, args.port, args.flower_port, history, out)
    except ConfigError as exc:
        print(f"avtomatika stack: {exc}", file=sys.stderr)
        return 2
