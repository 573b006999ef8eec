"""A history database outage never stops jobs: the backlog shows and drains once PostgreSQL is back (SPEC §6)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest

from avtomatika.config import Config
from tests.apps.history_app import build_engine
from tests.conftest import Orchestrator
from tests.services import GLOBAL_WORKER_TOKEN, ROOT, Postgres, postgres_server, wait_until


@pytest.fixture
def own_postgres() -> Iterator[Postgres]:
    """A cluster of its own: this test stops it."""
    with postgres_server() as server:
        yield server


def test_jobs_run_while_postgres_is_down_and_the_backlog_drains_after(own_postgres, caplog):
    caplog.set_level(logging.WARNING, logger="avtomatika.history.writer")
    config = Config(
        {
            "CLIENTS_CONFIG_PATH": str(ROOT / "tests/apps/clients.toml"),
            "WORKERS_CONFIG_PATH": str(ROOT / "tests/apps/workers.toml"),
            "GLOBAL_WORKER_TOKEN": GLOBAL_WORKER_TOKEN,
            "HISTORY_DATABASE_URI": own_postgres.create_database("outage"),
        }
    )
    config.API_HOST, config.API_PORT, config.CLIENT_TOKEN = "127.0.0.1", 0, "y" * 32
    engine = build_engine(config=config)
    runner = engine.wiring.runner()
    runner.start()
    orch = Orchestrator("embedded", f"http://127.0.0.1:{runner.port}")
    writer = engine.service.history.writer
    try:
        before = orch.create("/api/v1/jobs/linear", {"value": 1})
        assert orch.wait(before)["status"] == "finished"
        wait_until(lambda: writer.backlog == 0 and writer.written >= 8, 20, what="the first job written")

        own_postgres.stop()
        during = [orch.create("/api/v1/jobs/linear", {"value": n}) for n in range(5)]
        assert [orch.wait(job_id)["status"] for job_id in during] == ["finished"] * 5  # jobs do not wait
        wait_until(lambda: writer.failing, 20, what="the writer to notice the outage")
        with orch.client() as http:
            board = http.get("/api/v1/dashboard").json()
            assert board["history"]["failing"] is True and board["history"]["backlog"] > 0
            metrics = http.get("/_public/metrics").text
            assert re.search(r"^orchestrator_history_backlog [1-9]", metrics, re.M), metrics[-2000:]
            down = http.get(f"/api/v1/jobs/{during[0]}/history")
            assert down.status_code == 503 and "error" in down.json()
        assert any("history database unavailable" in r.getMessage() for r in caplog.records)

        own_postgres.start()
        wait_until(lambda: writer.backlog == 0 and not writer.failing, 30, what="the backlog to drain")
        assert any("history database is back" in r.getMessage() for r in caplog.records)
        with orch.client() as http:
            for job_id in during:
                kinds = [r["event_type"] for r in http.get(f"/api/v1/jobs/{job_id}/history").json()]
                assert kinds[0] == "job_created" and kinds[-1] == "job_finished" and len(kinds) == 12, kinds
            assert http.get("/api/v1/dashboard").json()["history"] == {"backlog": 0, "dropped": 0, "failing": False}
            assert re.search(r"^orchestrator_history_backlog 0", http.get("/_public/metrics").text, re.M)
    finally:
        runner.stop()
