"""Apps written for 1.0b4 start unchanged: `config.CLIENT_TOKEN` plus a clients.toml holding the same token.

1.0b4 authenticated only the clients of clients.toml, so an app following its Quick Start sets
`config.CLIENT_TOKEN` and lists that token in clients.toml too; that client is the one meant (and an admin).
"""

from __future__ import annotations

import sys

import httpx
import pytest

from tests.integration.test_seed_and_demo import _run_quickstart
from tests.services import ROOT, Process, free_port, service_env, wait_for_status, wait_until

HERE = ROOT / "tests/compat"
TOKEN = "my-secret-client-token"
SEED_CLIENTS = str(HERE / "seed_clients.toml")


def test_quickstart_with_a_clients_file_holding_its_token():
    _run_quickstart(CLIENTS_CONFIG_PATH=SEED_CLIENTS)


@pytest.mark.parametrize("mode", ["embedded", "redis"])
def test_seed_style_app_finishes_a_job_with_the_sdk_1_0b3_worker(mode, request, sdk_workers):
    env = {"CLIENTS_CONFIG_PATH": SEED_CLIENTS, "API_PORT": str(free_port())}
    if mode == "redis":
        env["REDIS_URL"] = request.getfixturevalue("redis_url") + "/6"
    app = Process([sys.executable, str(HERE / "seed_worker_app.py")], service_env(**env), "seed-app")
    base = f"http://127.0.0.1:{env['API_PORT']}"
    try:
        wait_for_status(app, base, "the seed-style app")
        sdk_workers(base, "gpu-transcoder-1", "my-secret-worker-token", script="seed_transcoder.py")
        headers = {"X-Avtomatika-Token": TOKEN}
        created = httpx.post(base + "/api/v1/jobs/my_flow", json={"path": "/videos/cat"}, headers=headers)
        assert created.status_code == 202, created.text
        job_id = created.json()["job_id"]

        def finished() -> dict | None:
            view = httpx.get(f"{base}/api/v1/jobs/{job_id}", headers=headers).json()
            assert view["status"] not in ("failed", "quarantined", "cancelled"), view
            return view if view["status"] == "finished" else None

        view = wait_until(finished, 30, what="the job to finish")
        assert view["current_state"] == "publish_video"
        assert view["state_history"] == {"output_path": "/videos/cat.mp4", "duration": 95}
        wait_until(lambda: "Published /videos/cat.mp4 (95 s)" in app.output(), 5, what="the end handler's output")
        # the clients.toml client is the admin CLIENT_TOKEN names: it may reload workers (1.0b4's answer shape)
        reload = httpx.post(base + "/api/v1/admin/reload-workers", headers=headers)
        assert reload.status_code == 200 and reload.json()["status"] == "worker_configs_reloaded"
    finally:
        app.stop()
