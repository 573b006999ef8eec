"""A URL over 4 KB gets the JSON 414 error shape under gunicorn as deployed (deploy/gunicorn.conf.py)."""

from __future__ import annotations

import httpx
import pytest

from tests.services import BIN, ROOT, Process, free_port, service_env, wait_for_status


@pytest.fixture(scope="module")
def deployed_api():
    port = free_port()
    env = service_env(
        AVTOMATIKA_APP="tests.apps.suite_app:engine",
        CLIENT_TOKEN="u" * 32,
        API_HOST="127.0.0.1",
        API_PORT=str(port),
        GUNICORN_WORKERS="1",
        GUNICORN_ACCESS_LOG="/dev/null",
    )
    proc = Process([str(BIN / "gunicorn"), "-c", str(ROOT / "deploy/gunicorn.conf.py"), "webapi.wsgi:app"], env, "api")
    base = f"http://127.0.0.1:{port}"
    wait_for_status(proc, base)
    try:
        yield base
    finally:
        proc.stop()


@pytest.mark.parametrize("path", ["/api/v1/jobs", "/_worker/workers/w1/tasks/next", "/no/such/route"])
@pytest.mark.parametrize("size", [4097, 8000])
def test_a_url_over_4_kb_is_a_json_414(deployed_api, path, size):
    url = path + "?q=" + "a" * (size - len(path) - 3)
    answer = httpx.get(deployed_api + url, headers={"X-Avtomatika-Token": "client-a-token"}, timeout=10)
    assert answer.status_code == 414, answer.text[:200]
    assert answer.json() == {"error": "request URL too long", "details": {"limit_bytes": 4096}}


def test_a_url_of_4_kb_is_served(deployed_api):
    path = "/api/v1/jobs?status=finished&q="
    answer = httpx.get(
        deployed_api + path + "a" * (4096 - len(path)), headers={"X-Avtomatika-Token": "client-a-token"}, timeout=10
    )
    assert answer.status_code == 200, answer.text[:200]
