"""Caps on the long requests one identity holds open at once (issue 9, #13): `?wait` long-polls per client,
task long-polls per worker; beyond the cap a 429 JSON answer at once, other identities unaffected."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from avtomatika.config import Config
from tests.apps import suite_app
from tests.services import GLOBAL_WORKER_TOKEN, ROOT, wait_until
from tests.workers.http_worker import HttpWorker, unique

POLL_SECONDS = 3


@pytest.fixture(scope="module")
def capped() -> Iterator[tuple[str, object]]:
    config = Config(
        {
            "CLIENTS_CONFIG_PATH": str(ROOT / "tests/apps/clients.toml"),
            "GLOBAL_WORKER_TOKEN": GLOBAL_WORKER_TOKEN,
            "WORKER_POLL_TIMEOUT_SECONDS": str(POLL_SECONDS),
            "MAX_OPEN_WAITS_PER_CLIENT": "2",
            "MAX_OPEN_POLLS_PER_WORKER": "2",
        }
    )
    config.API_HOST, config.API_PORT, config.CLIENT_TOKEN = "127.0.0.1", 0, "c" * 32
    engine = suite_app.build_engine(config=config)
    runner = engine.wiring.runner()
    runner.start()
    try:
        yield f"http://127.0.0.1:{runner.port}", engine
    finally:
        runner.stop()


def _is_cap_429(answer: httpx.Response) -> None:
    assert answer.status_code == 429, answer.text
    body = answer.json()
    assert body["error"].startswith("too many open long requests") and body["details"]["limit"] == 2
    assert int(answer.headers["Retry-After"]) >= 1


def test_a_clients_open_waits_are_capped(capped):
    base, _ = capped
    with httpx.Client(base_url=base, headers={"X-Avtomatika-Token": suite_app.CLIENT_A}, timeout=30) as http:
        job_id = http.post("/api/v1/jobs/tasks", json={"task_type": unique("never")}).json()["job_id"]

    def wait(token: str) -> httpx.Response:
        with httpx.Client(base_url=base, headers={"X-Avtomatika-Token": token}, timeout=30) as http:
            return http.get(f"/api/v1/jobs/{job_id}", params={"wait": 4})

    with ThreadPoolExecutor(2) as pool:
        held = [pool.submit(wait, suite_app.CLIENT_A) for _ in range(2)]
        wait_until(lambda: _open(base, "client:client_a") == 2, 10, what="two waits to be open")
        _is_cap_429(wait(suite_app.CLIENT_A))
        with httpx.Client(base_url=base, headers={"X-Avtomatika-Token": suite_app.ADMIN}, timeout=30) as http:
            assert http.get(f"/api/v1/jobs/{job_id}").status_code == 200  # a plain read is not capped
        assert [f.result().status_code for f in held] == [200, 200]
    assert wait(suite_app.CLIENT_A).status_code == 200  # slots come back when the waits end


def test_a_workers_open_polls_are_capped(capped):
    base, _ = capped
    worker, other = HttpWorker(base, supported_tasks=[unique("idle")]), HttpWorker(base)
    assert worker.register().status_code == 200 and other.register().status_code == 200
    with ThreadPoolExecutor(2) as pool:
        held = [pool.submit(worker.http.get, f"/_worker/workers/{worker.worker_id}/tasks/next") for _ in range(2)]
        wait_until(lambda: _open(base, f"worker:{worker.worker_id}") == 2, 10, what="two polls to be open")
        _is_cap_429(worker.http.get(f"/_worker/workers/{worker.worker_id}/tasks/next"))
        assert other.poll() is None  # another worker still polls (204 after its timeout)
        assert [f.result().status_code for f in held] == [204, 204]
    assert worker.poll() is None
    worker.close()
    other.close()


def _open(base: str, key: str) -> int:
    """What an embedded app's counter in this process holds for `key` (ids are unique to each test)."""
    import gc

    from webapi.caps import OpenRequests

    for candidate in gc.get_objects():
        if isinstance(candidate, OpenRequests):
            count = candidate._open.get(key, 0)
            if count:
                return count
    return 0
