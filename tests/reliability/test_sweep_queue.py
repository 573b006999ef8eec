"""The sweep has its own Celery queue and its messages expire after one interval (issue 9, #12): behind a
backlog, old sweeps are dropped instead of running back to back, and a step backlog cannot delay them."""

from __future__ import annotations

import json
import re
import time

import pytest
import redis

from tests.services import BIN, Process, free_port, service_env, start_celery_worker, wait_until

pytestmark = pytest.mark.slow


def test_beat_sends_expiring_sweeps_to_their_own_queue(redis_url, tmp_path):
    url = redis_url + "/12"
    client = redis.Redis.from_url(url)
    client.flushdb()
    env = service_env(AVTOMATIKA_APP="tests.apps.suite_app:engine", REDIS_URL=url, WATCHER_INTERVAL_SECONDS="1")
    schedule = str(tmp_path / f"beat-{free_port()}")
    beat = Process([str(BIN / "celery"), "-A", "celery_app", "beat", "-s", schedule], env, "beat")
    try:
        wait_until(lambda: client.llen("avtomatika.sweep") >= 3, 30, what="three sweeps with no worker running")
    finally:
        beat.stop()
    assert client.llen("avtomatika.steps") == 0  # nothing of the sweep's on the step queue
    messages = [json.loads(raw) for raw in client.lrange("avtomatika.sweep", 0, -1)]
    assert {m["headers"]["task"] for m in messages} == {"avtomatika.sweep"}
    assert all(m["headers"]["expires"] for m in messages), [m["headers"]["expires"] for m in messages]
    time.sleep(1.5)  # every queued sweep is now past its one-interval expiry
    worker = start_celery_worker(env, name="late", concurrency=1)
    try:
        wait_until(lambda: client.llen("avtomatika.sweep") == 0, 30, what="the worker to take the sweeps")
        wait_until(
            lambda: worker.output().count("Discarding revoked task: avtomatika.sweep") == len(messages),
            30,
            what="every expired sweep to be dropped, not run",
        )
        assert not re.search(r"avtomatika\.sweep\[[^]]+\] succeeded", worker.output())
    finally:
        worker.stop()
