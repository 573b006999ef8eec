"""Approval notifiers: a registered one and the built-in `webhook` are told once, with the approval token."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest

from avtomatika import OrchestratorEngine, StateMachineBlueprint
from avtomatika.config import Config
from avtomatika.notifiers import ApprovalRequest
from tests.services import wait_until

TOKEN = "n" * 32

flow = StateMachineBlueprint("notified", api_version="v1", api_endpoint="jobs/notified")


@flow.handler_for("start", is_start=True)
def ask(initial_data, actions):
    actions.await_human_approval(initial_data["integration"], "ship it?", {"yes": "finished", "no": "failed"})


class Receiver(BaseHTTPRequestHandler):
    bodies: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers["Content-Length"])
        Receiver.bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stack() -> Iterator[tuple[OrchestratorEngine, str, list[ApprovalRequest], str]]:
    receiver = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    config = Config({"APPROVAL_WEBHOOK_URL": f"http://127.0.0.1:{receiver.server_port}/hook"})
    config.API_HOST, config.API_PORT, config.CLIENT_TOKEN = "127.0.0.1", 0, TOKEN
    engine = OrchestratorEngine(None, config)
    engine.register_blueprint(flow)
    told: list[ApprovalRequest] = []
    engine.register_notifier("slack", told.append)
    runner = engine.wiring.runner()
    runner.start()
    Receiver.bodies = []
    try:
        yield engine, f"http://127.0.0.1:{runner.port}", told, receiver
    finally:
        runner.stop()
        receiver.shutdown()


def create(base: str, integration: str) -> str:
    answer = httpx.post(
        base + "/api/v1/jobs/notified", json={"integration": integration}, headers={"X-Avtomatika-Token": TOKEN}
    )
    return str(answer.json()["job_id"])


def test_a_registered_notifier_gets_the_request_and_its_token_works(stack):
    engine, base, told, _ = stack
    job_id = create(base, "slack")
    request = wait_until(lambda: told and told[0], 10, what="the notifier call")
    assert (request.job_id, request.message, request.decisions) == (job_id, "ship it?", ["no", "yes"])
    assert request.approval_path == f"/_public/webhooks/approval/{job_id}"
    answer = httpx.post(
        base + request.approval_path, json={"decision": "yes"}, headers={"X-Approval-Token": request.approval_token}
    )
    assert answer.status_code == 200
    view = wait_until(
        lambda: (
            (v := httpx.get(f"{base}/api/v1/jobs/{job_id}", headers={"X-Avtomatika-Token": TOKEN}).json())["status"]
            == "finished"
            and v
        ),
        10,
    )
    assert len(told) == 1 and view["state_history"]["approvals"][0]["cause"] == "approval decision 'yes'"


def test_the_webhook_notifier_posts_the_request(stack):
    _, base, _, _ = stack
    job_id = create(base, "webhook")
    body = wait_until(lambda: Receiver.bodies and Receiver.bodies[0], 10, what="the webhook POST")
    assert body["job_id"] == job_id and body["decisions"] == ["no", "yes"] and len(body["approval_token"]) == 64
    answer = httpx.post(base + body["approval_path"], params={"token": body["approval_token"]}, json={"decision": "no"})
    assert answer.status_code == 200


def test_an_integration_without_notifier_still_waits(stack, caplog):
    _, base, told, _ = stack
    job_id = create(base, "carrier-pigeon")
    headers = {"X-Avtomatika-Token": TOKEN}
    view = wait_until(
        lambda: (
            (v := httpx.get(f"{base}/api/v1/jobs/{job_id}", headers=headers).json())["status"] == "waiting_for_human"
            and v
        ),
        10,
    )
    assert view["approval"]["integration"] == "carrier-pigeon" and not told
    assert (
        httpx.post(base + view["approval"]["approval_path"], json={"decision": "yes"}, headers=headers).status_code
        == 200
    )
