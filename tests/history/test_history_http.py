"""History end to end over real HTTP: embedded (SQLite file) and Redis mode with gunicorn and a Celery worker
process (PostgreSQL), a full job with fan-out, approval and a child job (SPEC §6)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.apps import suite_app
from tests.conftest import Orchestrator
from tests.services import GLOBAL_WORKER_TOKEN, ROOT, service_env, start_api, start_celery_worker, wait_until

# What one `audited` job with two branches records, in order. Branch events between commits (a task
# started, finished, its branch finished) interleave by time, so they are compared as a multiset per commit.
FAN_OUT_COMMIT = ["job_created", "state_started", "state_finished", "task_dispatched", "task_dispatched"]
BRANCHES = ["task_started", "task_started", "task_finished", "task_finished", "branch_finished", "branch_finished"]
AFTER_FAN_IN = ["state_started", "state_finished", "approval_requested"]
AFTER_APPROVAL = ["approval_received", "state_started", "state_finished", "sub_job_started"]
END = ["sub_job_finished", "job_finished"]


@pytest.fixture(scope="module")
def embedded_history(tmp_path_factory) -> Iterator[Orchestrator]:
    from avtomatika.config import Config
    from tests.apps.history_app import build_engine

    config = Config(
        {
            "CLIENTS_CONFIG_PATH": str(ROOT / "tests/apps/clients.toml"),
            "WORKERS_CONFIG_PATH": str(ROOT / "tests/apps/workers.toml"),
            "GLOBAL_WORKER_TOKEN": GLOBAL_WORKER_TOKEN,
            "WORKER_POLL_TIMEOUT_SECONDS": "2",
            "HISTORY_DATABASE_URI": f"sqlite:///{tmp_path_factory.mktemp('history') / 'history.db'}",
        }
    )
    config.API_HOST, config.API_PORT, config.CLIENT_TOKEN = "127.0.0.1", 0, "y" * 32
    runner = build_engine(config=config).wiring.runner()
    runner.start()
    try:
        yield Orchestrator("embedded", f"http://127.0.0.1:{runner.port}")
    finally:
        runner.stop()


@pytest.fixture(scope="module")
def redis_history(redis_url, postgres) -> Iterator[Orchestrator]:
    history = postgres.create_database("redis_mode_history")
    env = service_env(
        AVTOMATIKA_APP="tests.apps.history_app:engine",
        REDIS_URL=redis_url + "/3",
        CLIENT_TOKEN="x" * 32,
        HISTORY_DATABASE_URI=history,
    )
    worker = start_celery_worker(env, name="history-worker")
    api, base = start_api(env)
    try:
        yield Orchestrator("redis", base)
    finally:
        api.stop()
        worker.stop()


@pytest.fixture(params=["embedded", "redis"])
def with_history(request: pytest.FixtureRequest) -> Orchestrator:
    return request.getfixturevalue("embedded_history" if request.param == "embedded" else "redis_history")


def history(orch: Orchestrator, job_id: str, token: str = suite_app.CLIENT_A) -> httpx.Response:
    with orch.client(token) as http:
        return http.get(f"/api/v1/jobs/{job_id}/history")


def wait_for_events(orch: Orchestrator, job_id: str, last: str, total: int = 0) -> list[dict]:
    """The job's history once it holds `last` and at least `total` rows: each process (API, Celery worker)
    writes its own events in the background, so another process's may still be on their way."""

    def ready():
        rows = history(orch, job_id).json()
        return rows if last in [r["event_type"] for r in rows] and len(rows) >= total else None

    return wait_until(ready, 30, what=f"{last} in the history of {job_id}")


def test_a_full_job_lists_every_event_in_order(with_history):
    orch = with_history
    job_id = orch.create("/api/v1/jobs/audited", {"values": [1, 2]})
    waiting = wait_until(
        lambda: orch.client().get(f"/api/v1/jobs/{job_id}").json().get("status") == "waiting_for_human", 30
    )
    assert waiting
    with orch.client() as http:
        answer = http.post(f"/_public/webhooks/approval/{job_id}", json={"decision": "approve"})
    assert answer.status_code == 200, answer.text
    view = orch.wait(job_id)
    assert view["status"] == "finished", view
    expected = [*FAN_OUT_COMMIT, *BRANCHES, *AFTER_FAN_IN, *AFTER_APPROVAL, *END]
    rows = wait_for_events(orch, job_id, "job_finished", len(expected))
    kinds = [r["event_type"] for r in rows]
    assert len(kinds) == len(expected), kinds

    assert [r["sequence"] for r in rows] == list(range(1, len(rows) + 1))
    stamps = [r["timestamp"] for r in rows]
    assert all(len(s.split(".")[1]) >= 6 for s in stamps), stamps  # microseconds
    seqs = [r["job_seq"] for r in rows]
    assert seqs == sorted(seqs)
    n = len(FAN_OUT_COMMIT)
    assert kinds[:n] == FAN_OUT_COMMIT
    detail = [(r["event_type"], r["job_seq"], r["timestamp"][11:], r["task_id"]) for r in rows]
    assert sorted(kinds[n : n + len(BRANCHES)]) == sorted(BRANCHES), detail
    rest = kinds[n + len(BRANCHES) :]
    assert rest == [*AFTER_FAN_IN, *AFTER_APPROVAL, *END], detail

    by_kind = {r["event_type"]: r for r in rows}
    assert by_kind["approval_received"]["context_snapshot"] == {"decision": "approve"}
    assert by_kind["approval_received"]["next_state"] == "child"
    assert by_kind["approval_requested"]["context_snapshot"]["decisions"] == ["approve", "reject"]
    finished = [r for r in rows if r["event_type"] == "task_finished"]
    assert {r["worker_id"] for r in finished} == {"celery"} and {r["outcome"] for r in finished} == {"success"}
    child_id = by_kind["sub_job_started"]["context_snapshot"]["child_id"]
    assert by_kind["sub_job_finished"]["context_snapshot"] == {"child_id": child_id, "child_status": "finished"}
    assert by_kind["job_finished"]["status"] == "finished" and by_kind["job_finished"]["duration_ms"] >= 0
    assert by_kind["job_created"]["context_snapshot"] == {"client_id": "client_a"}

    # the child job has its own history, visible to the same client
    child = wait_for_events(orch, child_id, "job_finished", 12)
    child_kinds = [r["event_type"] for r in child]
    assert child_kinds[0] == "job_created" and child_kinds[-1] == "job_finished"
    assert child_kinds.count("state_finished") == 5

    # listed from history, with the filters
    with orch.client() as http:
        listed = http.get("/api/v1/jobs", params={"blueprint": "audited", "status": "finished"}).json()
        assert job_id in [j["id"] for j in listed]
        assert all(j["blueprint_name"] == "audited" and j["status"] == "finished" for j in listed)
        assert http.get("/api/v1/jobs", params={"blueprint": "linear", "limit": 1}).status_code == 200


def test_history_of_another_clients_job_is_404(with_history):
    job_id = with_history.create("/api/v1/jobs/linear", {"value": 1})
    with_history.wait(job_id)
    wait_for_events(with_history, job_id, "job_finished")
    answer = history(with_history, job_id, token=suite_app.CLIENT_B)
    assert answer.status_code == 404 and answer.json()["error"] == "job not found"
    assert history(with_history, job_id, token=suite_app.ADMIN).status_code == 200
    unknown = history(with_history, "00000000-0000-4000-8000-000000000000")
    assert unknown.status_code == 404
    with with_history.client(suite_app.CLIENT_B) as http:
        assert job_id not in [j["id"] for j in http.get("/api/v1/jobs", params={"limit": 1000}).json()]


@pytest.mark.parametrize(
    "params", [{"limit": "x"}, {"limit": 0}, {"limit": 1001}, {"offset": -1}, {"status": "nope"}, {"blueprint": ""}]
)
def test_bad_paging_parameters_are_400_json(embedded_history, params):
    with embedded_history.client() as http:
        answer = http.get("/api/v1/jobs", params=params)
    assert answer.status_code == 400 and "error" in answer.json(), answer.text


def test_the_dashboard_counts_jobs_queues_workers_and_the_history_backlog(embedded_history):
    with embedded_history.client() as http:
        worker = {"worker_id": "dash-worker", "supported_tasks": ["echo", "other"]}
        headers = {"X-Worker-Token": GLOBAL_WORKER_TOKEN}
        assert http.post("/_worker/workers/register", json=worker, headers=headers).status_code == 200
        board = http.get("/api/v1/dashboard").json()
    assert board["workers"]["total"] >= 1 and board["workers"]["by_task_type"]["echo"] >= 1
    assert board["workers"]["by_status"].get("idle", 0) >= 1
    assert set(board["history"]) == {"backlog", "dropped", "failing"}
    assert "queued" in board["jobs"] and "queues" in board["jobs"]


def test_every_answer_with_history_matches_the_document(with_history):
    from tests.api.test_openapi_conformance import check_every_answer

    check_every_answer(with_history.base)


def test_an_http_workers_attempt_is_recorded_with_its_worker(with_history):
    orch = with_history
    worker_id = f"hist-worker-{uuid.uuid4().hex[:8]}"
    task_type = f"hist-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=orch.base, headers={"X-Worker-Token": GLOBAL_WORKER_TOKEN}, timeout=15) as worker:
        register = {"worker_id": worker_id, "supported_tasks": [task_type]}
        assert worker.post("/_worker/workers/register", json=register).status_code == 200
        job_id = orch.create("/api/v1/jobs/tasks", {"task_type": task_type})
        task = worker.get(f"/_worker/workers/{worker_id}/tasks/next")
        assert task.status_code == 200, task.text
        result = {"job_id": job_id, "task_id": task.json()["task_id"], "worker_id": worker_id}
        done = worker.post("/_worker/tasks/result", json={**result, "result": {"status": "success", "data": {}}})
        assert done.status_code == 200, done.text
    assert orch.wait(job_id)["status"] == "finished"
    rows = wait_for_events(orch, job_id, "job_finished", 9)
    kinds = [r["event_type"] for r in rows]
    assert kinds == [
        "job_created",
        "state_started",
        "state_finished",
        "task_dispatched",
        "task_started",
        "task_finished",
        "state_started",
        "state_finished",
        "job_finished",
    ]
    started, finished = rows[4], rows[5]
    assert started["worker_id"] == finished["worker_id"] == worker_id
    assert finished["outcome"] == "success" and finished["attempt_number"] == 1
    assert finished["task_id"] == task.json()["task_id"] and finished["next_state"] == "done"
