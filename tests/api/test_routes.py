"""Public routes, the envelope form, idempotency, the graph, OpenAPI and the offline docs page."""

from __future__ import annotations

import uuid

import httpx

from tests.apps import suite_app


def test_status(orchestrator):
    answer = httpx.get(orchestrator.base + "/_public/status")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok"
    assert body["checks"]["storage"] == "ok"
    assert body["checks"]["broker"] == ("memory" if orchestrator.mode == "embedded" else "redis")


def test_envelope_form(orchestrator):
    with orchestrator.client() as http:
        answer = http.post(
            "/api/v1/jobs/linear",
            json={
                "initial_data": {"value": 5},
                "webhook_url": "http://127.0.0.1:9/hook",
                "result_timeout": 60,
            },
        )
    assert answer.status_code == 202
    assert answer.json()["status"] == "accepted"
    view = orchestrator.wait(answer.json()["job_id"])
    assert view["initial_data"] == {"value": 5}
    assert view["state_history"]["doubled"] == 10


def test_seed_body_with_envelope_like_key_stays_seed_form(orchestrator):
    """Only an object whose keys are all envelope keys (and include initial_data) is an envelope."""
    view = orchestrator.wait(orchestrator.create("/api/v1/jobs/linear", {"initial_data": 1, "value": 3}))
    assert view["initial_data"] == {"initial_data": 1, "value": 3}


def test_idempotency_key_header_and_field(orchestrator):
    key = str(uuid.uuid4())
    with orchestrator.client() as http:
        first = http.post("/api/v1/jobs/linear", json={"value": 1}, headers={"Idempotency-Key": key}).json()
        second = http.post("/api/v1/jobs/linear", json={"initial_data": {"value": 1}, "idempotency_key": key}).json()
    assert first["job_id"] == second["job_id"]
    with orchestrator.client(suite_app.CLIENT_B) as http:
        third = http.post("/api/v1/jobs/linear", json={"value": 1}, headers={"Idempotency-Key": key}).json()
    assert third["job_id"] != first["job_id"]


def test_job_view_has_no_secrets(orchestrator):
    view = orchestrator.wait(orchestrator.create("/api/v1/jobs/linear", {"value": 1}))
    assert set(view) == {
        "id",
        "blueprint_name",
        "status",
        "current_state",
        "initial_data",
        "state_history",
        "error_message",
        "retry_count",
        "created_at",
        "updated_at",
        "finished_at",
    }
    text = str(view)
    assert suite_app.CLIENT_A not in text and "client_a" not in text


def test_graph_is_dot(orchestrator):
    with orchestrator.client() as http:
        answer = http.get("/api/v1/blueprints/linear/graph")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/vnd.graphviz")
    assert '"start" -> "prepare"' in answer.text
    with orchestrator.client() as http:
        svg = http.get("/api/v1/blueprints/linear/graph?format=svg")
    assert svg.status_code in (200, 501)
    if svg.status_code == 501:
        assert "graphviz" in svg.json()["error"]


def test_openapi_lists_blueprint_routes(orchestrator):
    spec = httpx.get(orchestrator.base + "/_public/openapi.json").json()
    for route in ("/api/v1/jobs/linear", "/api/v1/jobs/conditional", "/api/v1/jobs/priced_order"):
        assert "post" in spec["paths"][route], route
    assert spec["security"] == [{"client": []}]  # the default of every operation that does not say otherwise
    assert "/api/v1/jobs/{job_id}" in spec["paths"]


def test_docs_page_uses_local_assets(orchestrator):
    page = httpx.get(orchestrator.base + "/_public/docs")
    assert page.status_code == 200
    assert "/_public/swagger-ui/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    bundle = httpx.get(orchestrator.base + "/_public/swagger-ui/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 100_000
