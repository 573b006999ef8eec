"""MemoryStorage drops what Redis would let expire, so an embedded engine running for weeks does not grow."""

from __future__ import annotations

import time

from avtomatika.job import JobStatus, new_job, set_status
from avtomatika.storage import MemoryStorage


def test_purge_drops_expired_records_keys_and_signals():
    storage = MemoryStorage()
    now = time.time()
    ended = new_job("bp", "start", {}, "c")
    storage.create_job(ended, idempotency_key="k-1", idempotency_ttl=1)
    set_status(ended, JobStatus.FAILED)
    assert storage.commit_job(ended, 0, retention_seconds=1)
    alive = new_job("bp", "start", {}, "c")
    storage.create_job(alive)
    storage.wake("w|ended-poll")  # a wake-up nobody waits for any more
    storage.push_command("absent-worker", {"command": "cancel_task"})
    storage.set_poller("w|p", ["t"], now + 1)

    assert storage.purge_expired(now) == 0  # nothing has expired yet
    assert storage.purge_expired(now + 2) == 3  # the ended record, its idempotency key, the ended poll
    assert storage.get_job(ended["id"]) is None and storage.get_job(alive["id"]) is not None
    assert storage.purge_expired(now + 3700) == 2  # the wake-up (2 min) and the command (1 h)
    assert storage.pop_commands("absent-worker", 0) == []
    assert not storage.wait_for_wake("w|ended-poll", 0)
    assert storage.purge_expired(now + 4000) == 0
