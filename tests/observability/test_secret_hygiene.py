"""Secret hygiene (SPEC §5): after a workload touching every route family (public, client, worker, admin,
approval, completion webhooks), no token, no token hash and no auth header value appears in any log line
(the test's own captured logs and the logs of every process it starts), job view, webhook body or API answer.

Tokens are random per run, so a match can only be a leak. History is on (SQLite): its rows are scanned
through their route (`GET /api/v1/jobs/{id}/history` answers are API answers like any other) and as the raw
bytes of the database files, which holds every row of every table.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import TERMINAL
from tests.services import ROOT, service_env, start_api, start_celery_worker, wait_until
from tests.services import WebhookReceiver as Receiver


def secret(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex}{uuid.uuid4().hex[:8]}"


@dataclass
class Secrets:
    client: str = field(default_factory=lambda: secret("client"))
    admin: str = field(default_factory=lambda: secret("admin"))
    operator: str = field(default_factory=lambda: secret("operator"))  # CLIENT_TOKEN
    worker: str = field(default_factory=lambda: secret("worker"))  # the worker's own token (workers.toml)
    global_worker: str = field(default_factory=lambda: secret("global"))
    wrong: str = field(default_factory=lambda: secret("wrong"))  # presented, refused, never echoed
    approvals: list[str] = field(default_factory=list)  # owners see these in job views: scanned in logs only

    def tokens(self) -> list[str]:
        return [self.client, self.admin, self.operator, self.worker, self.global_worker, self.wrong]

    def forbidden(self) -> list[str]:
        """Every token, its stored form (avtomatika.security.hash_token) and the header lines carrying it."""
        found = []
        for token in self.tokens():
            found += [token, hashlib.sha256(token.encode()).hexdigest()]
            found += [f"{header}: {token}" for header in ("X-Avtomatika-Token", "X-Worker-Token")]
        return found

    def write_files(self, directory: Path) -> dict[str, str]:
        clients = directory / "clients.toml"
        clients.write_text(
            f'[owner]\ntoken = "{self.client}"\nmonthly_attempts = 1000\n\n'
            f'[ops]\ntoken = "{self.admin}"\nrole = "admin"\n'
        )
        workers = directory / "workers.toml"
        workers.write_text(f'[hygiene-worker]\ntoken = "{self.worker}"\n')
        return {
            "CLIENTS_CONFIG_PATH": str(clients),
            "WORKERS_CONFIG_PATH": str(workers),
            "CLIENT_TOKEN": self.operator,
            "GLOBAL_WORKER_TOKEN": self.global_worker,
            "WORKER_POLL_TIMEOUT_SECONDS": "1",
        }


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.server.shutdown()


class Recorder:
    """Real HTTP calls whose every answer (status line, headers, body) is kept for the scan."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.answers: list[str] = []

    def call(self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs) -> httpx.Response:
        answer = httpx.request(method, self.base + path, headers=headers or {}, timeout=30, **kwargs)
        self.answers.append(f"{answer.status_code} {answer.headers} {answer.text}")
        return answer


def workload(http: Recorder, secrets: Secrets, receiver: Receiver) -> list[str]:
    """Every route family once, with good and bad credentials; returns the ids of the jobs it made."""
    client = {"X-Avtomatika-Token": secrets.client}
    admin = {"X-Avtomatika-Token": secrets.admin}
    worker = {"X-Worker-Token": secrets.worker}
    for path in ("/_public/status", "/_public/metrics", "/_public/openapi.json"):
        assert http.call("GET", path).status_code == 200
    # refused credentials of every kind
    assert http.call("GET", "/api/v1/jobs", {"X-Avtomatika-Token": secrets.wrong}).status_code == 401
    assert http.call("POST", "/api/v1/admin/reload-workers", client).status_code == 403
    assert http.call("POST", "/_worker/workers/register", {"X-Worker-Token": secrets.wrong}, json={}).status_code == 401
    spoof = {"worker_id": "someone-else", "supported_tasks": ["x"]}
    assert http.call("POST", "/_worker/workers/register", worker, json=spoof).status_code in (401, 403)
    # worker: register, heartbeat
    task_type = f"hygiene-{uuid.uuid4().hex[:8]}"
    record = {"worker_id": "hygiene-worker", "supported_tasks": [task_type]}
    assert http.call("POST", "/_worker/workers/register", worker, json=record).status_code == 200
    assert http.call("PATCH", "/_worker/workers/hygiene-worker", worker, json={"load": 0.1}).status_code == 200
    # client: a job with a worker task and a completion webhook
    body = {"initial_data": {"task_type": task_type}, "webhook_url": receiver.url}
    created = http.call("POST", "/api/v1/jobs/tasks", client, json=body)
    assert created.status_code == 202, created.text
    tasks_job = created.json()["job_id"]
    task = None
    for _ in range(10):
        polled = http.call("GET", "/_worker/workers/hygiene-worker/tasks/next", worker)
        if polled.status_code == 200:
            task = polled.json()
            break
    assert task is not None
    result = {"job_id": tasks_job, "task_id": task["task_id"], "worker_id": "hygiene-worker"}
    result["result"] = {"status": "success", "data": {"ok": True}}
    assert http.call("POST", "/_worker/tasks/result", worker, json=result).status_code == 200
    # the global worker token too
    other = {"worker_id": f"anon-{uuid.uuid4().hex[:6]}", "supported_tasks": ["nothing"]}
    assert (
        http.call(
            "POST", "/_worker/workers/register", {"X-Worker-Token": secrets.global_worker}, json=other
        ).status_code
        == 200
    )
    # approval: the owner finds the token in the job view, a human decides with it
    moderation = http.call("POST", "/api/v1/jobs/moderation", client, json={"title": "t"}).json()["job_id"]

    def approval() -> dict | None:
        view = http.call("GET", f"/api/v1/jobs/{moderation}", client).json()
        return view.get("approval")

    token = wait_until(approval, 20, what="the approval request")["approval_token"]
    secrets.approvals.append(token)
    decided = http.call(
        "POST", f"/_public/webhooks/approval/{moderation}", {"X-Approval-Token": token}, json={"decision": "approve"}
    )
    assert decided.status_code == 200, decided.text
    bad = http.call("POST", f"/_public/webhooks/approval/{moderation}", {"X-Approval-Token": secrets.wrong}, json={})
    assert bad.status_code in (401, 404, 409)
    # operator actions: a failing job, retried, then cancelled; a linear job; the graph
    flaky = http.call("POST", "/api/v1/jobs/flaky", client, json={}).json()["job_id"]
    linear = http.call("POST", "/api/v1/jobs/linear", client, json={"n": 1}).json()["job_id"]
    wait_until(lambda: http.call("GET", f"/api/v1/jobs/{flaky}", client).json()["status"] in TERMINAL, 30)
    assert http.call("POST", f"/api/v1/jobs/{flaky}/retry", admin).status_code == 200
    assert http.call("POST", f"/api/v1/jobs/{flaky}/cancel", client).status_code in (200, 409)
    assert http.call("GET", "/api/v1/blueprints/linear/graph", client).status_code == 200
    # admin routes
    assert http.call("POST", "/api/v1/admin/reload-workers", admin).status_code == 200
    assert http.call("GET", "/api/v1/workers", admin).status_code == 200
    assert http.call("GET", "/api/v1/dashboard", admin).status_code == 200
    jobs = [tasks_job, moderation, flaky, linear]
    for job_id in jobs:
        wait_until(lambda j=job_id: http.call("GET", f"/api/v1/jobs/{j}", client).json()["status"] in TERMINAL, 30)
    assert http.call("GET", "/api/v1/jobs", admin).status_code == 200
    assert http.call("GET", "/api/v1/jobs", client, params={"status": "finished"}).status_code == 200
    wait_until(lambda: receiver.raw, 20, what="the completion webhook")
    scan_history(http, client, jobs)
    return jobs


def scan_history(http: Recorder, client: dict[str, str], jobs: list[str]) -> None:
    """Each job's history (its answer joins the scanned API answers)."""
    for job_id in jobs:
        answer = http.call("GET", f"/api/v1/jobs/{job_id}/history", client)
        assert answer.status_code == 200 and answer.json(), answer.text


def database_files(path: Path) -> dict[str, str]:
    """The history database and its WAL, as text: every row of every table is in there."""
    found = {}
    for name in (path, Path(f"{path}-wal")):
        if name.exists():
            found[name.name] = name.read_bytes().decode("latin-1")
    assert path.name in found
    return found


def leaks(texts: dict[str, str], forbidden: list[str]) -> list[tuple[str, str]]:
    return [(where, value[:12] + "...") for where, text in texts.items() for value in forbidden if value in text]


@pytest.mark.redis
def test_no_secret_in_logs_answers_views_or_webhooks_redis_mode(redis_url: str, tmp_path: Path, receiver) -> None:
    secrets = Secrets()
    env = service_env(
        AVTOMATIKA_APP="tests.apps.suite_app:engine",
        REDIS_URL=redis_url + "/8",
        REDIS_KEY_PREFIX="hygiene",
        LOG_LEVEL="DEBUG",
        HISTORY_DATABASE_URI=f"sqlite:///{tmp_path / 'history.db'}",
        **secrets.write_files(tmp_path),
    )
    worker = start_celery_worker(env)
    api, base = start_api(env, workers=2, config=str(ROOT / "deploy/gunicorn.conf.py"))
    try:
        http = Recorder(base)
        jobs = workload(http, secrets, receiver)
    finally:
        api.stop()
        worker.stop()
    logs = {"api log": api.output(), "celery worker log": worker.output()}
    assert "hygiene-worker" in logs["api log"] and "avtomatika.step" in logs["celery worker log"]  # logs were kept
    answers = {f"answer {i}": text for i, text in enumerate(http.answers)}
    webhooks = {f"webhook {i}": body for i, body in enumerate(receiver.raw)}
    history = database_files(tmp_path / "history.db")
    assert any(jobs[0] in text for text in history.values())  # the rows are in the scanned bytes
    assert leaks({**logs, **answers, **webhooks, **history}, secrets.forbidden()) == []
    assert leaks(logs, secrets.approvals) == []


def test_no_secret_in_captured_logs_embedded_mode(tmp_path: Path, receiver, caplog: pytest.LogCaptureFixture) -> None:
    from avtomatika.config import Config
    from tests.apps import suite_app

    secrets = Secrets()
    config = Config({**secrets.write_files(tmp_path), "HISTORY_DATABASE_URI": f"sqlite:///{tmp_path / 'history.db'}"})
    config.API_HOST, config.API_PORT = "127.0.0.1", 0
    engine = suite_app.build_engine(config=config)
    runner = engine.wiring.runner()
    caplog.set_level(logging.DEBUG)
    runner.start()
    try:
        http = Recorder(f"http://127.0.0.1:{runner.port}")
        jobs = workload(http, secrets, receiver)
        views = {job_id: json.dumps(engine.wiring.service.storage.get_job(job_id)) for job_id in jobs}
    finally:
        runner.stop()
    lines = [record.getMessage() + (record.exc_text or "") for record in caplog.records]
    assert any("hygiene-worker" in line or "/_worker/" in line for line in lines)  # the logs were captured
    logs = {f"log {i}": line for i, line in enumerate(lines)}
    answers = {f"answer {i}": text for i, text in enumerate(http.answers)}
    webhooks = {f"webhook {i}": body for i, body in enumerate(receiver.raw)}
    stored = {f"stored job {job_id}": text for job_id, text in views.items()}
    history = database_files(tmp_path / "history.db")
    assert any(jobs[0] in text for text in history.values())  # the rows are in the scanned bytes
    assert leaks({**logs, **answers, **webhooks, **stored, **history}, secrets.forbidden()) == []
    assert leaks(logs, secrets.approvals) == []
