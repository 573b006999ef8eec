"""The authentication matrix, driven by the OpenAPI document: every route × every wrong identity gets the
expected 401/403/404 JSON error, never data, and changes nothing. Both modes.

Identities: no token, a wrong token, another client's token (on routes of client A's job), a non-admin on
an admin route, a worker token on a client route, a client token on a worker route, a revoked worker (its
own token removed by a reload) and a worker acting as another worker id. Every route the Flask app serves
must be in the OpenAPI document or in `UNDOCUMENTED`, so a new route cannot escape the matrix.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from avtomatika.config import Config
from tests.apps import suite_app
from tests.services import GLOBAL_WORKER_TOKEN, ROOT, service_env, start_api, wait_until
from webapi.worker_auth import CACHE_SECONDS

MARKER = "auth-matrix-private-marker"
GPU, GPU_TOKEN, CPU_TOKEN = "gpu-worker-01", "gpu-worker-01-secret", "cpu-worker-02-secret"
REVOKED, REVOKED_TOKEN = "revoked-worker", "revoked-worker-secret"
# Served by the app but not in the OpenAPI document (flask-sock routes, docs assets); authenticated by the
# same before_request hooks as the documented worker routes.
UNDOCUMENTED = {
    "/_worker/ws/<worker_id>": "worker",
    "/_worker/ws": "worker",
    "/_public/openapi.json": "public",
    "/_public/docs": "public",
    "/_public/docs/<path:filename>": "public",
    "/_public/swagger-ui/<path:filename>": "public",
    "/static/<path:filename>": "public",
    "/favicon.ico": "public",
}


@pytest.fixture(params=["embedded", "redis"], scope="module")
def stack(request, tmp_path_factory, redis_url) -> Iterator[tuple[str, Any]]:
    """(base URL, workers file) of an orchestrator whose workers file this module may rewrite."""
    workers_file = tmp_path_factory.mktemp("auth") / "workers.toml"
    shutil.copy(ROOT / "tests/apps/workers.toml", workers_file)
    with open(workers_file, "a") as handle:
        handle.write(f'\n[{REVOKED}]\ntoken = "{REVOKED_TOKEN}"\n')
    if request.param == "embedded":
        config = Config(
            {
                "CLIENTS_CONFIG_PATH": str(ROOT / "tests/apps/clients.toml"),
                "WORKERS_CONFIG_PATH": str(workers_file),
                "GLOBAL_WORKER_TOKEN": GLOBAL_WORKER_TOKEN,
                "WORKER_POLL_TIMEOUT_SECONDS": "1",
                "HISTORY_DATABASE_URI": f"sqlite:///{workers_file.parent / 'history.db'}",
            }
        )
        config.API_HOST, config.API_PORT, config.CLIENT_TOKEN = "127.0.0.1", 0, "m" * 32
        runner = suite_app.build_engine(config=config).wiring.runner()
        runner.start()
        try:
            yield f"http://127.0.0.1:{runner.port}", workers_file
        finally:
            runner.stop()
    else:
        import redis

        url = redis_url + "/10"
        redis.Redis.from_url(url).flushdb()
        env = service_env(
            AVTOMATIKA_APP="tests.apps.suite_app:engine",
            REDIS_URL=url,
            CLIENT_TOKEN="m" * 32,
            WORKERS_CONFIG_PATH=str(workers_file),
            WORKER_POLL_TIMEOUT_SECONDS="1",
            HISTORY_DATABASE_URI=f"sqlite:///{workers_file.parent / 'history.db'}",  # its routes answer
        )
        api, base = start_api(env)
        try:
            yield base, workers_file
        finally:
            api.stop()


def _documented_routes(base: str) -> list[tuple[str, str, str]]:
    """(method, path template, kind) of every operation of the OpenAPI document; kind is client, admin,
    worker, approval or public, from the operation's security."""
    document = httpx.get(base + "/_public/openapi.json").json()
    routes = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            security = operation.get("security", document["security"])
            schemes = {name for requirement in security for name in requirement}
            if not schemes:
                kind = "public"
            elif schemes == {"worker"}:
                kind = "worker"
            elif "approval" in schemes:
                kind = "approval"
            elif schemes == {"client"}:
                kind = "admin" if "/admin/" in path else "client"
            else:
                raise AssertionError(f"{method.upper()} {path}: unknown security {security}")
            routes.append((method.upper(), path, kind))
    return routes


def test_every_served_route_is_documented_or_listed():
    config = Config(
        {"CLIENTS_CONFIG_PATH": str(ROOT / "tests/apps/clients.toml"), "GLOBAL_WORKER_TOKEN": GLOBAL_WORKER_TOKEN}
    )
    config.CLIENT_TOKEN = "m" * 32
    app = suite_app.build_engine(config=config).wsgi_app()
    document = app.test_client().get("/_public/openapi.json").get_json()
    documented = {path for path in document["paths"]}
    for rule in app.url_map.iter_rules():
        template = str(rule).replace("<job_id:job_id>", "{job_id}").replace("<", "{").replace(">", "}")
        assert template in documented or str(rule) in UNDOCUMENTED or template.startswith("/api/v2"), str(rule)


def _fill(path: str, job_id: str) -> str:
    filled = path.replace("{job_id}", job_id).replace("{worker_id}", GPU).replace("{name}", "linear")
    assert "{" not in filled, f"the auth matrix does not know how to fill {path}: add the parameter here"
    return filled


def _body(path: str, job_id: str) -> dict[str, Any]:
    if path.endswith("/register"):
        return {"worker_id": GPU, "supported_tasks": ["auth"]}
    if path.endswith("/tasks/result"):
        task_id = "00000000-0000-4000-8000-000000000001"
        return {"job_id": job_id, "task_id": task_id, "worker_id": GPU, "result": {"status": "success"}}
    if "/webhooks/approval/" in path:
        return {"decision": "approve"}
    return {"marker": MARKER}


def _wrong_identities(kind: str, path: str) -> dict[str, tuple[dict[str, str], set[int]]]:
    """name -> (headers, the statuses allowed) for the identities that must not get through."""
    wrong = {"X-Avtomatika-Token": "wrong-token", "X-Worker-Token": "wrong-token"}
    if kind in ("client", "admin"):
        found = {
            "no token": ({}, {401}),
            "wrong token": (wrong, {401}),
            "worker token": ({"X-Worker-Token": GPU_TOKEN, "X-Avtomatika-Token": GLOBAL_WORKER_TOKEN}, {401}),
        }
        if "{job_id}" in path:
            found["another client"] = ({"X-Avtomatika-Token": suite_app.CLIENT_B}, {404})
        if kind == "admin":
            found["non-admin client"] = ({"X-Avtomatika-Token": suite_app.CLIENT_A}, {403})
        return found
    if kind == "worker":
        return {
            "no token": ({}, {401}),
            "wrong token": (wrong, {401}),
            "client token": ({"X-Avtomatika-Token": suite_app.CLIENT_A, "X-Worker-Token": suite_app.CLIENT_A}, {401}),
            "revoked worker": ({"X-Worker-Token": REVOKED_TOKEN}, {401}),
            "another worker": ({"X-Worker-Token": CPU_TOKEN}, {403}),
        }
    if kind == "approval":
        return {
            "no token": ({}, {401}),
            "wrong token": (wrong, {401}),
            "wrong approval token": ({"X-Approval-Token": "wrong-approval-token"}, {401, 403}),
            "another client": ({"X-Avtomatika-Token": suite_app.CLIENT_B}, {404}),
            "worker token": ({"X-Worker-Token": GPU_TOKEN, "X-Avtomatika-Token": GLOBAL_WORKER_TOKEN}, {401}),
        }
    return {}


def _handshake(base: str, path: str, headers: dict[str, str]) -> int:
    """101 when a WebSocket handshake succeeds, else the HTTP status that refused it."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    try:
        with connect(base.replace("http://", "ws://", 1) + path, additional_headers=headers, open_timeout=10):
            return 101
    except InvalidStatus as refused:
        return int(refused.response.status_code)


def _revoke(base: str, workers_file) -> None:
    with httpx.Client(base_url=base, timeout=10) as http:
        body = {"worker_id": REVOKED, "supported_tasks": ["auth"]}
        headers = {"X-Worker-Token": REVOKED_TOKEN}
        if http.post("/_worker/workers/register", json=body, headers=headers).status_code == 200:
            workers_file.write_text((ROOT / "tests/apps/workers.toml").read_text())
            admin = {"X-Avtomatika-Token": suite_app.ADMIN}
            assert http.post("/api/v1/admin/reload-workers", headers=admin).status_code == 200
        wait_until(
            lambda: http.post("/_worker/workers/register", json=body, headers=headers).status_code == 401,
            CACHE_SECONDS + 10,
            what="the revoked token to be refused",
        )


def test_no_wrong_identity_gets_through_any_route(stack):
    base, workers_file = stack
    _revoke(base, workers_file)
    with httpx.Client(base_url=base, timeout=10, headers={"X-Avtomatika-Token": suite_app.CLIENT_A}) as owner:
        answer = owner.post("/api/v1/jobs/moderation", json={"marker": MARKER})
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["job_id"]
        with httpx.Client(base_url=base, timeout=10, headers={"X-Worker-Token": GPU_TOKEN}) as gpu:
            assert (
                gpu.post("/_worker/workers/register", json={"worker_id": GPU, "supported_tasks": ["auth"]}).status_code
                == 200
            )
        before = owner.get(f"/api/v1/jobs/{job_id}").json()
        admin = {"X-Avtomatika-Token": suite_app.ADMIN}

        def listed() -> int:
            return len(owner.get("/api/v1/jobs", params={"limit": 1000}, headers=admin).json())

        wait_until(lambda: listed() == 1, 10, what="the job in the listing (it may come from history)")
        routes = _documented_routes(base)
        checked = 0
        for method, path, kind in routes:
            url = _fill(path, job_id)
            for who, (headers, allowed) in _wrong_identities(kind, path).items():
                answer = httpx.request(method, base + url, json=_body(path, job_id), headers=headers, timeout=10)
                where = f"{method} {path} as {who}: {answer.status_code} {answer.text[:200]}"
                assert answer.status_code in allowed, where
                assert set(answer.json()) == {"error", "details"}, where
                assert MARKER not in answer.text and "state_history" not in answer.text, where
                checked += 1
        for path, kind in UNDOCUMENTED.items():
            if kind == "worker":  # the WebSocket routes: a real handshake, refused before the upgrade
                for who, (headers, allowed) in _wrong_identities("worker", path).items():
                    if who == "another worker" and "<worker_id>" not in path:
                        continue  # /_worker/ws names no id: a worker's own token is that worker
                    status = _handshake(base, path.replace("<worker_id>", GPU), headers)
                    assert status in allowed, (path, who, status)
                    checked += 1
        assert {kind for _, _, kind in routes} == {"client", "admin", "worker", "approval", "public"}
        assert checked > 100
        # nothing changed: the job, and no job was created by a refused request
        assert owner.get(f"/api/v1/jobs/{job_id}").json() == before
        time.sleep(1)  # a job created by a refused request would be listed by now
        assert listed() == 1
