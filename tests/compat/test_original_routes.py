"""Routes of the original that are not tied to one API version: served under every version a blueprint uses,
and `flush_db` behind `DEBUG_ENDPOINTS` and an admin token. Real HTTP against an embedded engine."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from avtomatika import OrchestratorEngine, StateMachineBlueprint
from avtomatika.config import Config
from tests.services import ROOT, wait_until

ADMIN, CLIENT = "admin-token", "client-a-token"  # tests/apps/clients.toml

versioned = StateMachineBlueprint("v2_flow", api_version="v2", api_endpoint="jobs/flow")
plain = StateMachineBlueprint("plain_flow", api_endpoint="/things")


@versioned.handler_for("start", is_start=True)
def versioned_start(actions):
    actions.transition_to("finished")


@plain.handler_for("start", is_start=True)
def plain_start(actions):
    actions.transition_to("finished")


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    config = Config(
        {
            "CLIENTS_CONFIG_PATH": str(ROOT / "tests/apps/clients.toml"),
            "WORKERS_CONFIG_PATH": str(ROOT / "tests/apps/workers.toml"),
            "DEBUG_ENDPOINTS": "true",
        }
    )
    config.API_HOST, config.API_PORT, config.CLIENT_TOKEN = "127.0.0.1", 0, "z" * 32
    engine = OrchestratorEngine(None, config)
    engine.register_blueprint(versioned)
    engine.register_blueprint(plain)
    runner = engine.wiring.runner()
    runner.start()
    try:
        yield f"http://127.0.0.1:{runner.port}"
    finally:
        runner.stop()


@pytest.mark.parametrize(("create", "prefix"), [("/api/v2/jobs/flow", "/api/v2"), ("/api/things", "/api")])
def test_common_routes_under_every_version_in_use(base, create, prefix):
    with httpx.Client(base_url=base, headers={"X-Avtomatika-Token": CLIENT}) as http:
        job_id = http.post(create, json={"a": 1}).json()["job_id"]
        view = wait_until(lambda: (v := http.get(f"{prefix}/jobs/{job_id}").json())["status"] == "finished" and v, 10)
        assert view["initial_data"] == {"a": 1}
        assert http.get(f"/api/v1/jobs/{job_id}").status_code == 200  # v1 always serves them too
        assert http.post(f"{prefix}/jobs/{job_id}/cancel").status_code == 409
        assert isinstance(http.get(f"{prefix}/workers").json(), list)
        assert http.get(f"{prefix}/dashboard").json()["workers"]["total"] == 0
        assert http.get(f"{prefix}/blueprints/plain_flow/graph").status_code == 200
        assert http.get("/api/v3/workers").status_code == 404  # no blueprint uses v3


def test_flush_db_needs_an_admin_and_keeps_worker_tokens(base):
    with httpx.Client(base_url=base) as http:
        assert http.post("/_public/debug/flush_db").status_code == 401
        assert http.post("/_public/debug/flush_db", headers={"X-Avtomatika-Token": CLIENT}).status_code == 403
        job_id = http.post("/api/things", json={}, headers={"X-Avtomatika-Token": CLIENT}).json()["job_id"]
        flushed = http.post("/_public/debug/flush_db", headers={"X-Avtomatika-Token": ADMIN})
        assert flushed.status_code == 200 and flushed.json() == {"status": "db_flushed"}
        assert http.get(f"/api/v1/jobs/{job_id}", headers={"X-Avtomatika-Token": ADMIN}).status_code == 404
        # gpu-worker-01 has its own token in workers.toml: the global token must still be refused for it
        register = {"worker_id": "gpu-worker-01", "supported_tasks": ["x"]}
        with_global = http.post(
            "/_worker/workers/register", json=register, headers={"X-Worker-Token": "secure-worker-token"}
        )
        assert with_global.status_code == 401
        own = http.post("/_worker/workers/register", json=register, headers={"X-Worker-Token": "gpu-worker-01-secret"})
        assert own.status_code == 200


def test_flush_db_is_absent_without_debug_endpoints(orchestrator):
    with orchestrator.client("admin-token") as http:
        assert http.post(orchestrator.base + "/_public/debug/flush_db").status_code == 404
