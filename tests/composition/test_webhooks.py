"""Completion webhooks over real HTTP in both modes: the final view reaches a local receiver exactly once."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.services import WebhookReceiver as Receiver
from tests.services import wait_until


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
