"""Rate limits per client and per worker identity: 429 with Retry-After, other identities unaffected."""

from __future__ import annotations

import time

import httpx

from avtomatika.config import Config
from tests.apps import suite_app
from tests.services import GLOBAL_WORKER_TOKEN, ROOT
from tests.workers.http_worker import HttpWorker, unique


def test_client_over_its_limit_gets_429_with_retry_after(orchestrator):
    with orchestrator.client("limited-token") as http:
        answers = [http.get(f"/api/v1/jobs/{unique('x')}") for _ in range(4)]
    # The limit is per identity and the fixture is shared: earlier runs may have used some of the budget.
    assert 429 in [a.status_code for a in answers]
    limited = next(a for a in answers if a.status_code == 429)
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["error"].startswith("rate limit of 3 per 1 minute exceeded")
    with orchestrator.client(suite_app.CLIENT_B) as http:  # another client is not affected
        assert http.get(f"/api/v1/jobs/{unique('x')}").status_code == 404


def test_worker_limit_is_per_worker_identity():
    config = Config(
        {
            "CLIENTS_CONFIG_PATH": str(ROOT / "tests/apps/clients.toml"),
            "GLOBAL_WORKER_TOKEN": GLOBAL_WORKER_TOKEN,
            "RATE_LIMIT_WORKER": "5 per minute",
        }
    )
    config.API_HOST, config.API_PORT, config.CLIENT_TOKEN = "127.0.0.1", 0, "r" * 32
    runner = suite_app.build_engine(config=config).wiring.runner()
    runner.start()
    try:
        base = f"http://127.0.0.1:{runner.port}"
        busy, calm = HttpWorker(base), HttpWorker(base)
        assert busy.register().status_code == 200
        codes = [busy.heartbeat().status_code for _ in range(5)]
        assert codes == [200, 200, 200, 200, 429]
        assert calm.register().status_code == 200 and calm.heartbeat().status_code == 200
        busy.close()
        calm.close()
    finally:
        runner.stop()


def test_defaults_do_not_throttle_a_well_behaved_worker(orchestrator):
    worker = HttpWorker(orchestrator.base)
    assert worker.register().status_code == 200
    assert all(worker.heartbeat().status_code == 200 for _ in range(30))
    worker.close()


def test_websocket_progress_events_count_against_the_workers_rate_limit():
    """Progress events over the worker's limit are dropped (the socket stays open)."""
    import json

    from websockets.sync.client import connect

    from tests.workers.support import ws_url

    config = Config(
        {
            "CLIENTS_CONFIG_PATH": str(ROOT / "tests/apps/clients.toml"),
            "GLOBAL_WORKER_TOKEN": GLOBAL_WORKER_TOKEN,
            "RATE_LIMIT_WORKER": "6 per minute",
            "WORKER_POLL_TIMEOUT_SECONDS": "2",
        }
    )
    config.API_HOST, config.API_PORT, config.CLIENT_TOKEN = "127.0.0.1", 0, "r" * 32
    runner = suite_app.build_engine(config=config).wiring.runner()
    runner.start()
    try:
        base = f"http://127.0.0.1:{runner.port}"
        task_type = unique("chatty")
        worker = HttpWorker(base, supported_tasks=[task_type])
        assert worker.register().status_code == 200  # request 1
        with httpx.Client(base_url=base, headers={"X-Avtomatika-Token": suite_app.CLIENT_A}) as http:
            job_id = http.post("/api/v1/jobs/tasks", json={"task_type": task_type}).json()["job_id"]
            task = worker.poll_until()  # request 2 (or more polls)
            headers = {"X-Worker-Token": GLOBAL_WORKER_TOKEN}
            with connect(ws_url(base, worker.worker_id), additional_headers=headers, open_timeout=10) as ws:
                for n in range(1, 11):  # the upgrade was request 3: only a few of these fit in the limit
                    ws.send(json.dumps({"event": "progress_update", "task_id": task["task_id"], "progress": n / 10}))
                time.sleep(1.0)  # the server reads the socket about twice a second
                shown = http.get(f"/api/v1/jobs/{job_id}").json()["progress"]
        assert shown is not None and shown["progress"] <= 0.4, shown
        worker.close()
    finally:
        runner.stop()
