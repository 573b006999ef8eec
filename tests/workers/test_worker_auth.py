"""Worker authentication (SPEC §5): individual tokens over the global one, reloading workers.toml, listing workers.

The reload tests rewrite a workers file, so they run against an API instance of their own: the engine's Flask
app served in this process (no Celery worker is needed, and an in-process Celery worker on the in-memory broker
would share its step queue with the session's embedded orchestrator).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.apps import suite_app
from tests.services import GLOBAL_WORKER_TOKEN, ROOT
from tests.workers.support import every_route, is_json_error, record_of, unique, ws_status

GPU_TOKEN = "gpu-worker-01-secret"  # tests/apps/workers.toml
CPU_TOKEN = "cpu-worker-02-secret"


def _register(base: str, worker_id: str, token: str) -> httpx.Response:
    body = {"worker_id": worker_id, "supported_tasks": [unique("auth")]}
    return httpx.post(base + "/_worker/workers/register", json=body, headers={"X-Worker-Token": token}, timeout=10)


# -- against the shared orchestrators (workers.toml of tests/apps) ----------------------------------------


def test_individual_token_takes_precedence_over_the_global_one(orchestrator):
    base = orchestrator.base
    # gpu-worker-01 has its own token: the global one no longer lets it in, anywhere
    refused = every_route(base, "gpu-worker-01", GLOBAL_WORKER_TOKEN)
    assert refused == dict.fromkeys(refused, 401)
    assert _register(base, "gpu-worker-01", GPU_TOKEN).json() == {"status": "registered"}
    assert _register(base, "cpu-worker-02", CPU_TOKEN).json() == {"status": "registered"}
    with httpx.Client(base_url=base, headers={"X-Worker-Token": GPU_TOKEN}) as http:
        assert http.patch("/_worker/workers/gpu-worker-01").json() == {"status": "ttl_refreshed"}
    # a worker without an entry uses the global token, and only that
    other = unique("w")
    assert _register(base, other, GLOBAL_WORKER_TOKEN).json() == {"status": "registered"}
    is_json_error(_register(base, other, "not-the-global-token"), 401)
    is_json_error(_register(base, other, GPU_TOKEN), 403)  # another worker's own token
    assert ws_status(base, "gpu-worker-01", GPU_TOKEN) == 101
    assert ws_status(base, "gpu-worker-01", GLOBAL_WORKER_TOKEN) == 401


def test_worker_list_holds_no_secrets(orchestrator):
    assert _register(orchestrator.base, "gpu-worker-01", GPU_TOKEN).status_code == 200
    other = unique("listed")
    assert _register(orchestrator.base, other, GLOBAL_WORKER_TOKEN).status_code == 200
    with orchestrator.client() as http:
        answer = http.get("/api/v1/workers")
    assert answer.status_code == 200
    listed = {w["worker_id"]: w for w in answer.json()}
    assert {"gpu-worker-01", other} <= set(listed)
    text = answer.text.lower()
    for secret in (GPU_TOKEN, CPU_TOKEN, GLOBAL_WORKER_TOKEN):
        assert secret.lower() not in text
        assert hashlib.sha256(secret.encode()).hexdigest() not in text
    assert "token" not in text
    assert record_of(orchestrator, other)["status"] == "idle"
    with orchestrator.client(token=None) as http:
        is_json_error(http.get("/api/v1/workers"), 401)
    with httpx.Client(base_url=orchestrator.base, headers={"X-Worker-Token": GLOBAL_WORKER_TOKEN}) as http:
        is_json_error(http.get("/api/v1/workers"), 401)  # a worker token is not a client token


# -- reloading workers.toml, on an API instance of its own --------------------------------------------------


@dataclass
class OwnApi:
    base: str
    workers_file: Path

    def write(self, text: str) -> None:
        self.workers_file.write_text(text)

    def reload(self, token: str | None = suite_app.ADMIN) -> httpx.Response:
        headers = {"X-Avtomatika-Token": token} if token is not None else {}
        return httpx.post(self.base + "/api/v1/admin/reload-workers", headers=headers, timeout=10)

    def accepted(self, worker_id: str, token: str) -> dict[str, int]:
        return every_route(self.base, worker_id, token)


LET_IN = {"register": 200, "heartbeat": 200, "heartbeat_body": 200, "poll": 204, "result": 404, "websocket": 101}


def _tables(tokens: dict[str, str]) -> str:
    return "".join(f'[{worker_id}]\ntoken = "{token}"\n\n' for worker_id, token in tokens.items())


@pytest.fixture
def own_api(tmp_path: Path) -> Iterator[OwnApi]:
    from werkzeug.serving import make_server

    from avtomatika.config import Config

    workers_file = tmp_path / "workers.toml"
    workers_file.write_text(_tables({"w-alpha": "alpha-1", "w-beta": "beta-1"}))
    config = Config(
        {
            "CLIENTS_CONFIG_PATH": str(ROOT / "tests/apps/clients.toml"),
            "WORKERS_CONFIG_PATH": str(workers_file),
            "GLOBAL_WORKER_TOKEN": GLOBAL_WORKER_TOKEN,
            "WORKER_POLL_TIMEOUT_SECONDS": "0",  # a poll that is let in answers 204 at once
            "CLIENT_TOKEN": "o" * 32,
        }
    )
    engine = suite_app.build_engine(config=config)
    server = make_server("127.0.0.1", 0, engine.wsgi_app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield OwnApi(f"http://127.0.0.1:{server.server_port}", workers_file)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_reload_adds_changes_and_revokes_tokens(own_api):
    assert own_api.accepted("w-alpha", "alpha-1") == LET_IN
    assert own_api.accepted("w-beta", "beta-1") == LET_IN
    assert own_api.accepted("w-gamma", GLOBAL_WORKER_TOKEN) == LET_IN
    own_api.write(_tables({"w-alpha": "alpha-2", "w-gamma": "gamma-1"}))
    # the file alone changes nothing until it is reloaded
    assert own_api.accepted("w-alpha", "alpha-1") == LET_IN
    assert set(own_api.accepted("w-alpha", "alpha-2").values()) == {401}

    answer = own_api.reload()
    assert answer.status_code == 200
    assert answer.json() == {"status": "worker_configs_reloaded", "workers_with_own_token": 2}

    # changed: the old token is refused on every route, the new one is let in
    assert set(own_api.accepted("w-alpha", "alpha-1").values()) == {401}
    assert own_api.accepted("w-alpha", "alpha-2") == LET_IN
    # removed: its own token is revoked, and the worker falls back to the global token
    assert set(own_api.accepted("w-beta", "beta-1").values()) == {401}
    assert own_api.accepted("w-beta", GLOBAL_WORKER_TOKEN) == LET_IN
    # added: the global token no longer works for it, its own does
    assert set(own_api.accepted("w-gamma", GLOBAL_WORKER_TOKEN).values()) == {401}
    assert own_api.accepted("w-gamma", "gamma-1") == LET_IN
    # and a worker still may act only as itself
    assert set(own_api.accepted("w-gamma", "alpha-2").values()) == {403}
    assert set(own_api.accepted("w-beta", "gamma-1").values()) == {403}


def test_reload_removing_every_worker(own_api):
    own_api.write("")
    assert own_api.reload().json() == {"status": "worker_configs_reloaded", "workers_with_own_token": 0}
    assert set(own_api.accepted("w-alpha", "alpha-1").values()) == {401}
    assert own_api.accepted("w-alpha", GLOBAL_WORKER_TOKEN) == LET_IN


@pytest.mark.parametrize(
    ("token", "status"), [(suite_app.CLIENT_A, 403), (suite_app.CLIENT_B, 403), (None, 401), ("nope", 401)]
)
def test_reload_needs_an_admin_client(own_api, token, status):
    own_api.write(_tables({"w-alpha": "alpha-2"}))
    is_json_error(own_api.reload(token), status)
    assert own_api.accepted("w-alpha", "alpha-1") == LET_IN  # nothing was reloaded
    assert set(own_api.accepted("w-alpha", "alpha-2").values()) == {401}
    assert own_api.reload().status_code == 200  # the admin client may
    assert own_api.accepted("w-alpha", "alpha-2") == LET_IN


@pytest.mark.parametrize(
    "text",
    [
        '[w-alpha]\ntoken = "alpha-2"\n[w-beta',  # not TOML
        '[w-alpha]\ntoken = "alpha-2"\n\n[w-beta]\nplan = "x"\n',  # a table without a token
        '[w-alpha]\ntoken = "alpha-2"\n\n[w-beta]\ntoken = 5\n',  # token not a string
        '[w-alpha]\ntoken = "alpha-2"\n\n[w-beta]\ntoken = "  "\n',  # blank token
        '[w-alpha]\ntoken = "alpha-2"\n\n[w-beta]\ntoken = "alpha-2"\n',  # two workers, one token
        'w-alpha = "alpha-2"\n',  # not a table
        None,  # the file is gone
    ],
    ids=["malformed", "no_token", "token_number", "blank_token", "shared_token", "not_a_table", "missing"],
)
def test_bad_workers_file_on_reload_is_400_and_keeps_the_tokens(own_api, text):
    if text is None:
        own_api.workers_file.unlink()
    else:
        own_api.write(text)
    body = is_json_error(own_api.reload(), 400)
    assert "previous tokens stay in effect" in body["error"]
    assert str(own_api.workers_file) in str(body["details"])  # names the file
    assert own_api.accepted("w-alpha", "alpha-1") == LET_IN
    assert own_api.accepted("w-beta", "beta-1") == LET_IN
    assert set(own_api.accepted("w-alpha", "alpha-2").values()) == {401}
    assert set(own_api.accepted("w-alpha", GLOBAL_WORKER_TOKEN).values()) == {401}
