"""Benchmark processes and their CPU: start services in their own sessions, read utime+stime from /proc."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def _proc_stat(pid: int) -> tuple[int, list[str]] | None:
    """(ppid, fields from `state` on) of /proc/<pid>/stat, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            text = handle.read()
    except OSError:
        return None
    rest = text[text.rindex(")") + 2 :].split()
    return int(rest[1]), rest


def descendants(root: int) -> list[int]:
    """`root` and every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _proc_stat(int(entry))
            if stat is not None:
                children.setdefault(stat[0], []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def cpu_ticks(root: int, *, with_children: bool = True) -> dict[int, int]:
    """Clock ticks (utime+stime) per pid of `root`'s tree; the root also counts its reaped children."""
    pids = descendants(root) if with_children else [root]
    ticks = {}
    for pid in pids:
        stat = _proc_stat(pid)
        if stat is None:
            continue
        rest = stat[1]
        # rest[11..14] = utime, stime, cutime, cstime (fields 14..17 of proc(5)).
        used = int(rest[11]) + int(rest[12])
        if with_children and pid == root:
            used += int(rest[13]) + int(rest[14])
        ticks[pid] = used
    return ticks


class Service:
    """A child process in its own session, output in a log file; `stop()` ends its whole process group."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logdir: Path, cwd: Path = ROOT) -> None:
        self.name = name
        self.log_path = logdir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            args, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def check(self) -> None:
        if self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.output()[-3000:]}")

    def stop(self, timeout: float = 10) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout)
            except ProcessLookupError:
                pass
        self._log.close()


def service_env(**extra: str) -> dict[str, str]:
    """The environment of benchmark services: no inherited Redis/app/client settings."""
    drop = ("REDIS_", "AVTOMATIKA_", "CLIENT", "WORKERS_", "PYTEST_", "API_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", LOG_LEVEL="WARNING")
    env.update(extra)
    return env


def start_redis(logdir: Path) -> tuple[Service, str]:
    port = free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    service = Service("redis", args, service_env(), logdir)
    import redis

    client = redis.Redis(port=port)

    def up() -> bool:
        service.check()
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    wait_until(up, 10, "redis-server")
    client.close()
    return service, f"redis://127.0.0.1:{port}"


def start_celery_worker(
    app: str,
    env: dict[str, str],
    logdir: Path,
    *,
    pool: str,
    concurrency: int,
    queue: str,
    loglevel: str,
    events: bool = True,
) -> Service:
    """`celery -A app worker` (with `-E` unless `events` is False); returns once it consumes."""
    args = [
        str(BIN / "celery"), "-A", app, "worker", *(["-E"] if events else []), "-P", pool, "-c", str(concurrency),
        "-Q", queue, "-n", f"bench-{free_port()}@%h", "--without-mingle", "--without-gossip", "-l", loglevel,
    ]  # fmt: skip
    service = Service("worker", args, env, logdir)

    def ready() -> bool:
        service.check()
        return "ready." in service.output()

    # "ready." is logged at INFO only; below that, wait for the pool children to exist instead.
    if loglevel.upper() in ("DEBUG", "INFO"):
        wait_until(ready, 60, "celery worker")
    else:
        wait_until(lambda: service.check() or len(descendants(service.pid)) > (1 if pool == "prefork" else 0),
                   60, "celery worker")  # fmt: skip
        time.sleep(1.5)  # FACTS: a worker answers ~1.5 s after start
    return service


def wait_http(service: Service, base: str) -> None:
    def up() -> bool:
        service.check()
        try:
            return httpx.get(base + "/_public/status", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, 60, f"{service.name} at {base}")


def system_busy_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot, from the first line of /proc/stat."""
    with open("/proc/stat") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields[:8]) - idle, sum(fields[:8])


def wait_for_quiet(max_busy_cores: float = 0.3, timeout: float = 120.0) -> float:
    """Wait (up to `timeout`) until other processes use less than `max_busy_cores`; returns the last reading."""
    deadline = time.monotonic() + timeout
    while True:
        busy0, _ = system_busy_ticks()
        began = time.monotonic()
        time.sleep(1.0)
        busy1, _ = system_busy_ticks()
        cores = (busy1 - busy0) / CLK_TCK / (time.monotonic() - began)
        if cores <= max_busy_cores or time.monotonic() > deadline:
            return round(cores, 2)


class CpuMeter:
    """utime+stime of each role's process tree (and of this driver process) between `start()` and `stop()`.

    It also reads the machine's total busy time, so CPU used by processes outside the benchmark during the
    run (`other`, in cores) shows when a figure was disturbed by a neighbour.
    """

    def __init__(self, roles: dict[str, int]) -> None:
        self.roles = roles
        self.before: dict[str, dict[int, int]] = {}
        self.after: dict[str, dict[int, int]] = {}
        self.system: list[tuple[int, int, float]] = []
        self.names: dict[int, str] = {}

    def _sample(self) -> dict[str, dict[int, int]]:
        sample = {role: cpu_ticks(pid) for role, pid in self.roles.items()}
        sample["driver"] = cpu_ticks(os.getpid(), with_children=False)
        for pids in sample.values():
            for pid in pids:
                self.names.setdefault(pid, _comm(pid))
        return sample

    def start(self) -> None:
        self.system = [(*system_busy_ticks(), time.monotonic())]
        self.before = self._sample()

    def stop(self) -> None:
        self.after = self._sample()
        self.system.append((*system_busy_ticks(), time.monotonic()))

    def report(self, units: int) -> dict[str, Any]:
        """CPU ms in total and per unit (job or chain) by role, with a per-pid breakdown."""
        out: dict[str, Any] = {}
        for role, after in self.after.items():
            before = self.before.get(role, {})
            ms = (sum(after.values()) - sum(before.values())) * 1000 / CLK_TCK
            pids = {
                f"{pid} {self.names.get(pid, '?')}": round((after[pid] - before.get(pid, 0)) * 1000 / CLK_TCK, 1)
                for pid in after
            }
            out[role] = {"ms": round(ms, 1), "ms_per_unit": round(ms / max(units, 1), 3), "pids": pids}
        total = sum(v["ms"] for v in out.values())
        out["total"] = {"ms": round(total, 1), "ms_per_unit": round(total / max(units, 1), 3)}
        (busy0, _, t0), (busy1, _, t1) = self.system
        machine_ms = (busy1 - busy0) * 1000 / CLK_TCK
        out["machine"] = {
            "busy_cores": round(machine_ms / 1000 / (t1 - t0), 2),
            "ours_cores": round(total / 1000 / (t1 - t0), 2),
            "other_cores": round(max(machine_ms - total, 0) / 1000 / (t1 - t0), 2),
        }
        return out
