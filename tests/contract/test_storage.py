"""One contract suite for every storage backend (SPEC §3, STYLE "one contract suite run against every backend").

Each test runs against `MemoryStorage` and against `RedisStorage` on a real redis-server (a fresh key prefix
per test). Races line up their writers with a `threading.Barrier`.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from avtomatika.job import new_job
from avtomatika.storage import MemoryStorage, RedisStorage, StorageBackend
from tests.services import free_port

WRITERS = 8


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def storage(request: pytest.FixtureRequest) -> Iterator[StorageBackend]:
    if request.param == "memory":
        backend: StorageBackend = MemoryStorage()
    else:
        backend = RedisStorage(request.getfixturevalue("redis_url"), prefix=f"contract-{uuid.uuid4().hex}")
    try:
        yield backend
    finally:
        backend.flush()
        backend.close()


def a_job(**initial_data) -> dict:
    return new_job("bp", "start", initial_data, "client-1")


def race(count: int, action: Callable[[int], object]) -> list[object]:
    """Run `action(i)` in `count` threads released together by a barrier; returns the results in order."""
    barrier = threading.Barrier(count, timeout=10)
    results: list[object] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = action(index)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert not errors, errors
    return results


# -- create / get ----------------------------------------------------------------------------------------


def test_create_and_get(storage):
    job = a_job(text="héllo ✓", nested={"list": [1, 2.5, None, True]})
    job["seq"] = 99  # whatever the caller had, a new job starts at 0
    job_id = storage.create_job(job)
    assert job_id == job["id"]
    assert job["seq"] == 0
    stored = storage.get_job(job_id)
    assert stored == job
    assert stored["seq"] == 0
    assert stored["initial_data"] == {"text": "héllo ✓", "nested": {"list": [1, 2.5, None, True]}}


def test_get_unknown_job_is_none(storage):
    assert storage.get_job("no-such-job") is None


def test_records_are_copies(storage):
    job = a_job(value=1)
    storage.create_job(job)
    job["initial_data"]["value"] = 2
    first = storage.get_job(job["id"])
    assert first["initial_data"] == {"value": 1}
    first["state_history"]["x"] = 1
    assert storage.get_job(job["id"])["state_history"] == {}


# -- idempotency -----------------------------------------------------------------------------------------


def test_idempotency_key_returns_the_first_job(storage):
    first, second, other = a_job(n=1), a_job(n=2), a_job(n=3)
    assert storage.create_job(first, idempotency_key="k") == first["id"]
    assert storage.create_job(second, idempotency_key="k") == first["id"]
    assert storage.get_job(second["id"]) is None  # nothing stored for the repeat
    assert storage.get_job(first["id"])["initial_data"] == {"n": 1}
    assert storage.create_job(other, idempotency_key="other") == other["id"]
    without_key = a_job()
    assert storage.create_job(without_key) == without_key["id"]


def test_idempotency_race_makes_one_job(storage):
    jobs = [a_job(writer=i) for i in range(WRITERS)]
    results = race(WRITERS, lambda i: storage.create_job(jobs[i], idempotency_key="same"))
    assert len(set(results)) == 1
    winner = results[0]
    assert winner in {job["id"] for job in jobs}
    stored = [job["id"] for job in jobs if storage.get_job(job["id"]) is not None]
    assert stored == [winner]


# -- compare-and-set -------------------------------------------------------------------------------------


def test_commit_is_a_compare_and_set(storage):
    job = a_job()
    storage.create_job(job)
    job["status"] = "running"
    assert storage.commit_job(job, 0) is True
    assert job["seq"] == 1
    stored = storage.get_job(job["id"])
    assert (stored["seq"], stored["status"]) == (1, "running")

    stale = dict(stored, status="failed")
    stale["seq"] = 0
    assert storage.commit_job(stale, 0) is False
    assert stale["seq"] == 0  # untouched on failure
    assert storage.commit_job(stale, 5) is False
    stored = storage.get_job(job["id"])
    assert (stored["seq"], stored["status"]) == (1, "running")

    job["status"] = "finished"
    assert storage.commit_job(job, 1) is True
    assert storage.get_job(job["id"])["seq"] == 2


def test_commit_of_unknown_job_fails(storage):
    job = a_job()
    assert storage.commit_job(job, 0) is False
    assert storage.get_job(job["id"]) is None


def test_commit_race_has_exactly_one_winner(storage):
    job = a_job()
    storage.create_job(job)
    copies = [storage.get_job(job["id"]) for _ in range(WRITERS)]
    for index, copy in enumerate(copies):
        copy["state_history"] = {"writer": index}
    results = race(WRITERS, lambda i: storage.commit_job(copies[i], 0))
    assert results.count(True) == 1
    assert results.count(False) == WRITERS - 1
    winner = results.index(True)
    stored = storage.get_job(job["id"])
    assert stored["seq"] == 1
    assert stored["state_history"] == {"writer": winner}
    assert [copy["seq"] for copy in copies] == [1 if i == winner else 0 for i in range(WRITERS)]


# -- expiry (real time is what is tested here; each wait is about a second) ------------------------------


def test_retention_and_idempotency_keys_expire(storage):
    terminal, running, keyed = a_job(), a_job(), a_job()
    for job in (terminal, running):
        storage.create_job(job)
    storage.create_job(keyed, idempotency_key="short", idempotency_ttl=1)
    terminal["status"] = "finished"
    assert storage.commit_job(terminal, 0, retention_seconds=1)
    assert storage.commit_job(running, 0)
    assert storage.get_job(terminal["id"]) is not None
    time.sleep(1.1)
    assert storage.get_job(terminal["id"]) is None
    assert storage.commit_job(terminal, 1) is False  # an expired record cannot be revived by a commit
    assert storage.get_job(running["id"]) is not None
    again = a_job()
    assert storage.create_job(again, idempotency_key="short") == again["id"]


def test_commit_without_retention_keeps_a_job_that_had_one(storage, request):
    job = a_job()
    storage.create_job(job)
    job["status"] = "failed"
    assert storage.commit_job(job, 0, retention_seconds=1)
    job["status"] = "pending"  # an operator retry resumes the job
    assert storage.commit_job(job, 1)
    time.sleep(1.1)
    assert storage.get_job(job["id"]) is not None


# -- locks -----------------------------------------------------------------------------------------------


def test_lock_acquire_and_release(storage):
    assert storage.acquire_lock("sweep", "token-a", 30) is True
    assert storage.acquire_lock("sweep", "token-b", 30) is False
    assert storage.acquire_lock("sweep", "token-a", 30) is False  # not re-entrant
    assert storage.acquire_lock("other", "token-b", 30) is True  # locks are independent
    assert storage.release_lock("sweep", "token-b") is False  # wrong token
    assert storage.acquire_lock("sweep", "token-b", 30) is False  # still held by a
    assert storage.release_lock("sweep", "token-a") is True
    assert storage.release_lock("sweep", "token-a") is False  # already released
    assert storage.acquire_lock("sweep", "token-b", 30) is True
    assert storage.release_lock("never-taken", "token-a") is False


def test_lock_expires(storage):
    assert storage.acquire_lock("tick", "token-a", 1)
    assert storage.acquire_lock("tick", "token-b", 1) is False
    time.sleep(1.05)
    assert storage.acquire_lock("tick", "token-b", 30) is True
    assert storage.release_lock("tick", "token-a") is False  # a's lease is over; b holds the lock
    assert storage.acquire_lock("tick", "token-c", 30) is False


def test_release_after_expiry_fails(storage, request):
    assert storage.acquire_lock("tick", "token-a", 1)
    time.sleep(1.05)
    assert storage.release_lock("tick", "token-a") is False


def test_lock_race_has_exactly_one_holder(storage):
    results = race(WRITERS, lambda i: storage.acquire_lock("race", f"token-{i}", 30))
    assert results.count(True) == 1
    holder = results.index(True)
    assert storage.release_lock("race", f"token-{(holder + 1) % WRITERS}") is False
    assert storage.release_lock("race", f"token-{holder}") is True


# -- stall watch list ------------------------------------------------------------------------------------


def test_stall_watch_list(storage):
    late, early, middle, unwatched = a_job(), a_job(), a_job(), a_job()
    storage.create_job(late, watch_until=300.0)
    storage.create_job(early, watch_until=100.0)
    storage.create_job(middle, watch_until=200.5)
    storage.create_job(unwatched)
    assert storage.stalled_jobs(99.9) == []
    assert storage.stalled_jobs(150) == [early["id"]]
    assert storage.stalled_jobs(1000) == [early["id"], middle["id"], late["id"]]  # oldest first
    assert storage.stalled_jobs(1000, limit=2) == [early["id"], middle["id"]]

    storage.watch_job(early["id"], None)
    assert storage.stalled_jobs(1000) == [middle["id"], late["id"]]
    storage.watch_job(late["id"], 50.0)  # moved
    storage.watch_job(unwatched["id"], 60.0)  # added
    assert storage.stalled_jobs(1000) == [late["id"], unwatched["id"], middle["id"]]
    storage.watch_job("not-watched", None)  # removing an absent entry is harmless


def test_commit_moves_or_clears_the_watch(storage):
    job = a_job()
    storage.create_job(job, watch_until=100.0)
    assert storage.commit_job(job, 0, watch_until=500.0)
    assert storage.stalled_jobs(400) == []
    assert storage.stalled_jobs(600) == [job["id"]]
    assert storage.commit_job(job, 1, watch_until=None)
    assert storage.stalled_jobs(10**12) == []
    assert storage.commit_job(job, 2, watch_until=10.0)
    assert storage.stalled_jobs(20) == [job["id"]]


def test_failed_commit_leaves_the_watch_alone(storage):
    job = a_job()
    storage.create_job(job, watch_until=100.0)
    assert storage.commit_job(dict(job), 7, watch_until=None) is False
    assert storage.stalled_jobs(1000) == [job["id"]]


def test_idempotent_repeat_does_not_watch_the_discarded_job(storage):
    first, second = a_job(), a_job()
    storage.create_job(first, idempotency_key="k", watch_until=100.0)
    storage.create_job(second, idempotency_key="k", watch_until=50.0)
    assert storage.stalled_jobs(1000) == [first["id"]]


# -- flush / ping ----------------------------------------------------------------------------------------


def test_flush_deletes_everything(storage):
    job = a_job()
    storage.create_job(job, idempotency_key="k", watch_until=1.0)
    storage.acquire_lock("l", "t", 30)
    storage.flush()
    assert storage.get_job(job["id"]) is None
    assert storage.stalled_jobs(1000) == []
    assert storage.acquire_lock("l", "other", 30) is True
    fresh = a_job()
    assert storage.create_job(fresh, idempotency_key="k") == fresh["id"]


def test_ping(storage):
    assert storage.ping() is True


# -- Redis specifics -------------------------------------------------------------------------------------


def round_trip(storage: StorageBackend) -> None:
    job = a_job(value=1)
    assert storage.create_job(job, idempotency_key="k", watch_until=5.0) == job["id"]
    assert storage.get_job(job["id"])["initial_data"] == {"value": 1}
    assert storage.commit_job(job, 0, watch_until=7.0)
    assert storage.stalled_jobs(10) == [job["id"]]
    assert storage.acquire_lock("l", "t", 5)
    assert storage.release_lock("l", "t")
    assert storage.ping()


@pytest.mark.redis
def test_redis_flush_keeps_other_prefixes(redis_url):
    mine = RedisStorage(redis_url, prefix=f"mine-{uuid.uuid4().hex}")
    theirs = RedisStorage(redis_url, prefix=f"{mine.prefix}x")
    try:
        kept = a_job()
        theirs.create_job(kept, watch_until=1.0)
        mine.create_job(a_job(), watch_until=1.0)
        mine.flush()
        assert mine.stalled_jobs(10) == []
        assert theirs.get_job(kept["id"]) is not None
        assert theirs.stalled_jobs(10) == [kept["id"]]
    finally:
        theirs.flush()
        mine.close()
        theirs.close()


@pytest.mark.redis
def test_redis_storage_from_a_sync_client(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    storage = RedisStorage(client, prefix=f"sync-{uuid.uuid4().hex}")
    try:
        # The client's connection settings are reused (a bytes-mode client of its own is built).
        assert (
            storage.client.connection_pool.connection_kwargs["port"] == client.connection_pool.connection_kwargs["port"]
        )
        assert storage.url.startswith("redis://127.0.0.1:")
        round_trip(storage)
    finally:
        storage.flush()
        client.close()


@pytest.mark.redis
def test_redis_storage_from_an_asyncio_client(redis_url):
    import redis.asyncio

    async_client = redis.asyncio.Redis.from_url(redis_url)
    try:
        storage = RedisStorage(async_client, prefix=f"async-{uuid.uuid4().hex}")
        try:
            assert storage.url == f"{redis_url}/0"
            round_trip(storage)
        finally:
            storage.flush()
            storage.close()
    finally:
        asyncio.run(async_client.aclose())


@pytest.mark.redis
def test_redis_storage_from_a_decoding_client(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    storage = RedisStorage(client, prefix=f"decode-{uuid.uuid4().hex}")
    try:
        round_trip(storage)
    finally:
        storage.flush()
        client.close()


@pytest.mark.redis
def test_redis_ping_is_false_when_unreachable():
    storage = RedisStorage(f"redis://127.0.0.1:{free_port()}/0")
    try:
        assert storage.ping() is False
    finally:
        storage.close()


# -- poison steps ----------------------------------------------------------------------------------------


def test_deliveries_are_counted_per_step_and_expire(storage):
    assert [storage.count_delivery("job-a", 3, 1) for _ in range(3)] == [1, 2, 3]
    assert storage.count_delivery("job-a", 4, 1) == 1  # the next step counts afresh
    assert storage.count_delivery("job-b", 3, 1) == 1
    time.sleep(1.1)
    storage.purge_expired(time.time())
    assert storage.count_delivery("job-a", 3, 30) == 1


def test_set_reputations_touches_live_workers_only_and_keeps_their_ttl(storage: StorageBackend) -> None:
    now = time.time()
    storage.save_worker({"worker_id": "rep-live", "supported_tasks": ["t"], "reputation": 1.0}, 60, now)
    storage.save_worker({"worker_id": "rep-gone", "supported_tasks": ["t"]}, 0.5, now)
    time.sleep(1.3)  # the second record expires (Redis TTLs are whole seconds)
    storage.set_reputations({"rep-live": 0.25, "rep-gone": 0.5, "rep-never": 0.75})
    live, gone, never = storage.get_workers(["rep-live", "rep-gone", "rep-never"])
    assert live is not None and live["reputation"] == 0.25 and live["supported_tasks"] == ["t"]
    assert gone is None and never is None  # not brought back, not created
    record, _ = storage.heartbeat_worker("rep-live", 60, time.time(), {"status": "busy"})
    assert record is not None and record["reputation"] == 0.25  # a heartbeat keeps it
    storage.save_worker({**record, "status": "idle"}, 60, time.time())  # re-registration keeps what it is given
    assert storage.get_workers(["rep-live"])[0]["reputation"] == 0.25
