"""Every malformed, oversized or hostile request gets a 4xx JSON error and changes nothing."""

from __future__ import annotations

import uuid

import pytest

from tests.apps import suite_app


def _is_json_error(answer, status):
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error", "details"}, body
    assert isinstance(body["error"], str) and body["error"]


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b"not json",
        b"[1, 2",
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b"[" * 100_000 + b"]" * 100_000,
        b"\xff\xfe",
    ],
)
def test_malformed_json_is_400(orchestrator, raw):
    with orchestrator.client() as http:
        answer = http.post("/api/v1/jobs/linear", content=raw, headers={"Content-Type": "application/json"})
    _is_json_error(answer, 400)


@pytest.mark.parametrize("body", [[1, 2], "text", 5, None])
def test_non_object_body_is_400(orchestrator, body):
    with orchestrator.client() as http:
        answer = http.post("/api/v1/jobs/linear", json=body)
    _is_json_error(answer, 400)


def test_empty_body_is_400(orchestrator):
    with orchestrator.client() as http:
        _is_json_error(http.post("/api/v1/jobs/linear"), 400)


def test_oversized_body_is_413(orchestrator):
    with orchestrator.client() as http:
        answer = http.post("/api/v1/jobs/linear", json={"blob": "x" * (2 * 1024 * 1024)})
    _is_json_error(answer, 413)


@pytest.mark.parametrize(
    "envelope",
    [
        {"initial_data": [1]},
        {"initial_data": {}, "webhook_url": "ftp://x"},
        {"initial_data": {}, "webhook_url": 5},
        {"initial_data": {}, "dispatch_timeout": -1},
        {"initial_data": {}, "result_timeout": "soon"},
        {"initial_data": {}, "idempotency_key": 7},
    ],
)
def test_bad_envelope_is_400(orchestrator, envelope):
    with orchestrator.client() as http:
        _is_json_error(http.post("/api/v1/jobs/linear", json=envelope), 400)


def test_unknown_endpoint_is_404(orchestrator):
    with orchestrator.client() as http:
        _is_json_error(http.post("/api/v1/flows/nope", json={}), 404)
        _is_json_error(http.post("/api/v2/jobs/linear", json={}), 404)
        _is_json_error(http.get("/nothing/here"), 404)


def test_wrong_method_is_405(orchestrator):
    with orchestrator.client() as http:
        _is_json_error(http.put("/api/v1/jobs/linear", json={}), 405)
        _is_json_error(http.delete("/_public/status"), 405)


@pytest.mark.parametrize("job_id", [str(uuid.uuid4()), "not-a-uuid", "x" * 300, "..%2f..%2fetc"])
def test_unknown_job_is_404(orchestrator, job_id):
    with orchestrator.client() as http:
        _is_json_error(http.get(f"/api/v1/jobs/{job_id}"), 404)


@pytest.mark.parametrize("token", [None, "", "wrong-token", "client-a-tokenX", "CLIENT-A-TOKEN", "x" * 5000])
def test_bad_token_is_401(orchestrator, token):
    with orchestrator.client(None) as http:
        headers = {} if token is None else {"X-Avtomatika-Token": token}
        _is_json_error(http.post("/api/v1/jobs/linear", json={}, headers=headers), 401)
        _is_json_error(http.get(f"/api/v1/jobs/{uuid.uuid4()}", headers=headers), 401)


def test_unknown_blueprint_graph_is_404(orchestrator):
    with orchestrator.client() as http:
        _is_json_error(http.get("/api/v1/blueprints/nope/graph"), 404)
        _is_json_error(http.get("/api/v1/blueprints/linear/graph?format=png"), 400)


def test_rejected_requests_create_nothing(orchestrator):
    """A bad request never leaves a job behind: the idempotency key of a rejected request stays unused."""
    key = f"bad-{uuid.uuid4()}"
    with orchestrator.client() as http:
        _is_json_error(
            http.post(
                "/api/v1/jobs/linear",
                json={"initial_data": {}, "dispatch_timeout": 0},
                headers={"Idempotency-Key": key},
            ),
            400,
        )
        first = http.post("/api/v1/jobs/linear", json={"value": 1}, headers={"Idempotency-Key": key})
        assert first.status_code == 202
        again = http.post("/api/v1/jobs/linear", json={"value": 2}, headers={"Idempotency-Key": key})
        assert again.json()["job_id"] == first.json()["job_id"]
    other = orchestrator.create("/api/v1/jobs/linear", {"value": 1}, token=suite_app.CLIENT_B)
    assert other != first.json()["job_id"]
