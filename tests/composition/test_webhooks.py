"""Completion webhooks over real HTTP in both modes: the final view reaches a local receiver exactly once."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.services import wait_until


class Receiver:
    """A local HTTP receiver answering the given statuses in turn (then 200), recording what it accepted."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.accepted: list[dict] = []
        self.attempts: list[tuple[str, int]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                receiver.attempts.append((self.headers["X-Avtomatika-Delivery"], status))
                if status == 200:
                    receiver.accepted.append(body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/done"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver([500])
    yield found
    found.server.shutdown()


def test_the_final_view_is_delivered_once_after_a_500(orchestrator, receiver):
    job_id = orchestrator.create("/api/v1/jobs/linear", {"initial_data": {"value": 3}, "webhook_url": receiver.url})
    assert orchestrator.wait(job_id)["status"] == "finished"
    wait_until(lambda: receiver.accepted, 20, what="the webhook delivery")
    time.sleep(1.5)  # a second delivery would arrive by now
    assert [body["id"] for body in receiver.accepted] == [job_id]
    assert receiver.accepted[0]["status"] == "finished" and receiver.accepted[0]["state_history"]["doubled"] == 6
    assert receiver.attempts == [(job_id, 500), (job_id, 200)]


def test_every_terminal_status_is_delivered_and_the_sweep_retries(orchestrator, engine):
    slow = Receiver([503, 503, 503, 503])  # more failures than the first thread tries
    try:
        job_id = orchestrator.create("/api/v1/jobs/no_action", {"initial_data": {}, "webhook_url": slow.url})
        assert orchestrator.wait(job_id)["status"] == "failed"
        wait_until(lambda: len(slow.attempts) >= 4, 30, what="four failed attempts")
        assert not slow.accepted
        wait_until(lambda: engine.service.webhooks.deliver_due(time.time() + 3600) >= 0 and slow.accepted, 20)
        assert [body["id"] for body in slow.accepted] == [job_id] and slow.accepted[0]["status"] == "failed"
        assert job_id not in engine.storage.due_webhooks(time.time() + 10**6, limit=100_000)
    finally:
        slow.server.shutdown()
