"""Fault injection under a running mixed workload (issue 9): Redis with AOF, the API under gunicorn, two
Celery workers, beat and two SDK worker processes. While jobs of three kinds (handler steps, an SDK
worker's task, a native task) are created continuously, each role is killed with kill -9 at a random moment
and restarted, Redis is shut down and restarted from its AOF, and Redis is paused (SIGSTOP/SIGCONT).

Afterwards every job is terminal and finished, no state change was applied twice (the commit probe of
tests/apps/suite_app.py logs each committed state from every process), and each job's completion webhook
was applied exactly once by a local receiver that deduplicates by `X-Avtomatika-Delivery` (the job id), as
docs/http-api.md asks: delivery is at least once, since a process can die after the POST and before it
records the delivery. Such repeats are bounded: at most one per injected fault.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import redis

from tests.apps import suite_app
from tests.conftest import TERMINAL
from tests.services import (
    BIN,
    GLOBAL_WORKER_TOKEN,
    Process,
    free_port,
    need_binary,
    service_env,
    start_celery_worker,
    wait_for_status,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


class AofRedis:
    """A redis-server with AOF (fsync on every write) that can be shut down and restarted in place."""

    def __init__(self, directory: Path) -> None:
        self.binary = need_binary("redis-server")
        self.port = free_port()
        self.directory = directory
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--dir",
                str(self.directory), "--appendonly", "yes", "--appendfsync", "always"]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        wait_until(lambda: _pings(client), 20, what="redis-server (AOF)")

    def shutdown_and_restart(self) -> None:
        with contextlib.suppress(redis.ConnectionError):
            redis.Redis.from_url(self.url).shutdown()  # flushes the AOF, then exits
        assert self.proc is not None
        self.proc.wait(20)
        self.start()

    def pause(self, seconds: float) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        time.sleep(seconds)
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(20)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


class Receiver:
    """A local completion-webhook receiver counting deliveries per job."""

    def __init__(self) -> None:
        self.deliveries: Counter[str] = Counter()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.deliveries[self.headers["X-Avtomatika-Delivery"]] += 1
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/done"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class Roles:
    """The processes of one deployment, each restartable in place."""

    def __init__(self, env: dict[str, str], tmp: Path) -> None:
        self.env, self.tmp = env, tmp
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.api = self.start_api()
        self.celery = [start_celery_worker(env, name=f"celery{n}", concurrency=2) for n in range(2)]
        self.beat = self.start_beat()
        self.sdk = [self.start_sdk(f"fault-sdk-{n}") for n in range(2)]

    def all(self) -> list[Process]:
        return [self.api, *self.celery, self.beat, *self.sdk]

    def start_api(self) -> Process:
        args = [str(BIN / "gunicorn"), "-k", "gevent", "-w", "2", "-b", f"127.0.0.1:{self.port}",
                "--graceful-timeout", "2", "--no-control-socket", "webapi.wsgi:app"]  # fmt: skip
        proc = Process(args, self.env, "api")
        wait_for_status(proc, self.base)
        return proc

    def start_beat(self) -> Process:
        schedule = str(self.tmp / f"beat-{free_port()}")
        return Process([str(BIN / "celery"), "-A", "celery_app", "beat", "-s", schedule], self.env, "beat")

    def start_sdk(self, worker_id: str) -> Process:
        env = {
            **self.env,
            "TEST_WORKER_ID": worker_id,
            "AVTOMATIKA_ORCHESTRATOR_URL": self.base,
            "AVTOMATIKA_WORKER_TOKEN": GLOBAL_WORKER_TOKEN,
        }
        return Process([str(BIN / "avtomatika"), "worker", "tests.apps.fault_worker:worker"], env, worker_id)


class Workload:
    """Creates jobs of three kinds continuously; a request without an answer is retried with its
    Idempotency-Key until it gets one (as a client must), so every key ends with exactly one job."""

    KINDS = [
        ("/api/v1/jobs/linear", {"value": 3}),
        ("/api/v1/jobs/tasks", {"task_type": "fault-echo", "text": "hi", "timeout": 30}),
        ("/api/v1/jobs/native", {"value": 21}),
    ]

    def __init__(self, base: str, webhook_url: str) -> None:
        self.base, self.webhook_url = base, webhook_url
        self.jobs: dict[str, str] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        headers = {"X-Avtomatika-Token": suite_app.CLIENT_A}
        with httpx.Client(base_url=self.base, headers=headers, timeout=10) as http:
            for n in itertools.count():
                if self.stop.is_set():
                    return
                path, initial = self.KINDS[n % len(self.KINDS)]
                key = f"fault-{n}"
                body = {"initial_data": initial, "webhook_url": self.webhook_url}
                while key not in self.jobs:
                    try:
                        answer = http.post(path, json=body, headers={"Idempotency-Key": key})
                    except httpx.HTTPError:
                        time.sleep(0.2)
                        continue
                    if answer.status_code == 202:
                        self.jobs[key] = answer.json()["job_id"]
                    else:  # 503 while Redis is down or paused
                        assert answer.status_code == 503, answer.text
                        time.sleep(0.2)
                time.sleep(0.15)


def test_random_kills_and_redis_faults_lose_and_double_nothing(tmp_path):
    rnd = random.Random(os.environ.get("FAULT_SEED", "20261203"))
    store = AofRedis(tmp_path)
    receiver = Receiver()
    commits = tmp_path / "commits.log"
    env = service_env(
        AVTOMATIKA_APP="tests.apps.suite_app:engine",
        REDIS_URL=store.url,
        CLIENT_TOKEN="f" * 32,
        AVTOMATIKA_TEST_COMMIT_LOG=str(commits),
        WATCHER_INTERVAL_SECONDS="1",
        WORKER_HEALTH_CHECK_INTERVAL_SECONDS="1",
        CELERY_VISIBILITY_TIMEOUT="6",
        STEP_STALL_SECONDS="5",
    )
    roles = Roles(env, tmp_path)
    workload = None
    try:
        workload = Workload(roles.base, receiver.url)
        wait_until(lambda: len(workload.jobs) >= 10, 60, what="the workload to start")

        def kill_celery() -> None:
            index = rnd.randrange(2)
            roles.celery[index].kill()
            roles.celery[index] = start_celery_worker(env, name=f"celery-r{index}", concurrency=2)

        def kill_api() -> None:
            roles.api.kill()
            roles.api = roles.start_api()

        def kill_beat() -> None:
            roles.beat.kill()
            roles.beat = roles.start_beat()

        def kill_sdk() -> None:
            index = rnd.randrange(2)
            roles.sdk[index].kill()
            roles.sdk[index] = roles.start_sdk(f"fault-sdk-{index}")

        faults = [
            ("kill -9 a Celery worker", kill_celery),
            ("kill -9 the API", kill_api),
            ("kill -9 beat", kill_beat),
            ("kill -9 an SDK worker", kill_sdk),
            ("Redis SHUTDOWN and restart from AOF", store.shutdown_and_restart),
            ("Redis paused for 3 s", lambda: store.pause(3)),
        ]
        rnd.shuffle(faults)
        for _name, inject in faults:
            time.sleep(rnd.uniform(0.5, 2.5))  # a random moment of the running workload
            inject()
        time.sleep(1)
        workload.stop.set()
        workload.thread.join(30)
        jobs = dict(workload.jobs)
        assert len(jobs) >= 30, len(jobs)

        with httpx.Client(base_url=roles.base, headers={"X-Avtomatika-Token": suite_app.CLIENT_A}) as http:

            def view(job_id: str) -> dict:
                return dict(http.get(f"/api/v1/jobs/{job_id}", timeout=10).json())

            pending = set(jobs.values())
            deadline = time.monotonic() + 90
            while pending and time.monotonic() < deadline:
                pending = {job_id for job_id in pending if view(job_id)["status"] not in TERMINAL}
                time.sleep(0.5)
            stuck = [
                {k: v.get(k) for k in ("id", "status", "current_state", "error_message", "task_type", "worker_id")}
                for v in map(view, pending)
            ]
            assert not stuck, stuck
            views = [view(job_id) for job_id in jobs.values()]
        statuses = Counter(v["status"] for v in views)
        unfinished = [
            (v["id"], v["status"], v["current_state"], v["error_message"]) for v in views if v["status"] != "finished"
        ]
        assert statuses == {"finished": len(jobs)}, (statuses, unfinished)
        assert len(set(jobs.values())) == len(jobs)  # one job per idempotency key

        applied = Counter()
        for line in commits.read_text().splitlines():
            job_id, what, name, _pid = line.split()
            if what == "state":
                applied[(job_id, name)] += 1
        doubled = {key: n for key, n in applied.items() if n > 1}
        assert not doubled, doubled

        wait_until(lambda: all(receiver.deliveries[j] >= 1 for j in jobs.values()), 60, what="every webhook")
        time.sleep(2)  # a repeated delivery would arrive by now
        assert set(receiver.deliveries) == set(jobs.values())  # none missing, none for an unknown job
        repeats = {j: n for j, n in receiver.deliveries.items() if n != 1}
        assert len(repeats) <= len(faults) and all(n == 2 for n in repeats.values()), repeats
    finally:
        if workload is not None:
            workload.stop.set()
        for proc in roles.all():
            proc.stop()
        store.stop()
        receiver.server.shutdown()
