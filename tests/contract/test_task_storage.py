"""Contract suite of the task operations (queues, claims, leases, polls) over every storage backend."""

from __future__ import annotations

import time

import pytest

from avtomatika.ops import EndLease, Enqueue, GrantLease, HoldsLease, JobChanges, StoreBranches, Withdraw
from avtomatika.tasks import NATIVE_WORKER, Lease, QueueEntry, capabilities
from tests.contract.test_storage import a_job, race, storage  # noqa: F401 - the backend fixture

CPU = capabilities({"worker_id": "cpu"})
GPU = capabilities({"worker_id": "gpu", "resources": {"gpu_info": {"model": "NVIDIA A100", "vram_gb": 80}}})


def queued(storage, task_type="t", priority=0.0, requirements=None, seq=None):  # noqa: F811
    job = a_job()
    storage.create_job(job)
    entry = QueueEntry(task_type, f"task-{job['id']}", job["id"], priority, 60.0, requirements)
    if seq is not None:
        entry = QueueEntry(task_type, entry.task_id, job["id"], priority, 60.0, requirements, seq=seq)
    job["wait"] = {"kind": "task", "task_id": entry.task_id, "member": entry.member, "queue": entry.queue}
    assert storage.commit_job_changes(job, 0, JobChanges([Enqueue(entry)])) == "ok"
    return entry


def claim(storage, worker="w", caps=CPU, types=("t",), **kwargs):  # noqa: F811
    return storage.claim_task(worker, list(types), caps, time.time(), 30.0, **kwargs)


def test_priority_then_fifo(storage):  # noqa: F811
    low = queued(storage, priority=0, seq=1)
    first = queued(storage, priority=5, seq=2)
    second = queued(storage, priority=5, seq=3)
    assert [claim(storage).task_id for _ in range(3)] == [first.task_id, second.task_id, low.task_id]
    assert claim(storage) is None


def test_eligible_task_behind_many_ineligible_ones_is_found(storage):  # noqa: F811
    for index in range(300):
        queued(storage, requirements={"gpu_model": "A100"}, seq=index + 1)
    plain = queued(storage, seq=10_000)
    found = claim(storage)
    assert found is not None and found.task_id == plain.task_id
    assert found.job is not None and found.job["id"] == plain.job_id
    assert claim(storage, "gpu", GPU).task_id.startswith("task-")
    assert storage.queue_length("t") == 299


def test_claim_or_register_the_poll(storage):  # noqa: F811
    until = time.time() + 30
    assert claim(storage, poll="w|p1", poll_until=until) is None
    assert storage.pollers("t", time.time()) == ["w|p1"]
    queued(storage)
    assert claim(storage, poll="w|p1", poll_until=until) is not None
    assert storage.pollers("t", time.time()) == []


def test_max_active_is_checked_atomically(storage):  # noqa: F811
    for index in range(8):
        queued(storage, seq=index + 1)
    claims = race(8, lambda _: claim(storage, max_active=2))
    assert sum(c is not None for c in claims) == 2
    assert storage.active_tasks(["w"]) == [2]


def test_one_claim_per_task_under_a_race(storage):  # noqa: F811
    queued(storage)
    claims = race(8, lambda i: claim(storage, worker=f"w{i}"))
    assert sum(c is not None for c in claims) == 1


def test_lease_ends_with_the_commit_and_remembers_the_answer(storage):  # noqa: F811
    entry = queued(storage)
    taken = claim(storage)
    job = storage.get_job(entry.job_id)
    changes = JobChanges([HoldsLease(taken.task_id, "someone-else"), EndLease(taken.task_id, "ok")])
    assert storage.commit_job_changes(job, job["seq"], changes) == "lease"
    changes = JobChanges([HoldsLease(taken.task_id, "w"), EndLease(taken.task_id, "result_accepted_success")])
    assert storage.commit_job_changes(job, job["seq"], changes) == "ok"
    assert storage.get_lease(taken.task_id) is None
    assert storage.result_answer(taken.task_id, "w") == "result_accepted_success"
    assert storage.result_answer(taken.task_id, "intruder") is None


def test_progress_is_kept_on_the_holders_lease_and_ends_with_it(storage):  # noqa: F811
    entry = queued(storage)
    taken = claim(storage)
    job = storage.get_job(entry.job_id)
    event = {"task_id": taken.task_id, "progress": 0.5, "message": "half", "at": 1.0}
    assert storage.record_lease_progress(taken.task_id, "intruder", event) is False
    assert storage.record_lease_progress(taken.task_id, "w", event) is True
    assert storage.get_lease(taken.task_id).progress == event
    assert storage.get_job(entry.job_id)["seq"] == job["seq"]  # the job record is not written
    changes = JobChanges([HoldsLease(taken.task_id, "w"), EndLease(taken.task_id, "result_accepted_success")])
    assert storage.commit_job_changes(job, job["seq"], changes) == "ok"
    assert storage.record_lease_progress(taken.task_id, "w", event) is False  # no lease, nothing written


def test_withdraw_of_a_claimed_task_is_gone(storage):  # noqa: F811
    entry = queued(storage)
    claim(storage)
    job = storage.get_job(entry.job_id)
    changes = JobChanges([Withdraw(entry.queue, entry.member, required=True)])
    assert storage.commit_job_changes(job, job["seq"], changes) == "gone"
    assert storage.get_job(entry.job_id)["seq"] == job["seq"]


def test_a_non_finite_number_is_refused_before_any_write(storage):  # noqa: F811
    """A NaN priority (or deadline) used to leave the job written but its task in no queue (Redis does not
    roll back a script that fails halfway); now the commit is refused whole."""
    job = a_job()
    storage.create_job(job)
    entry = QueueEntry("t", f"task-{job['id']}", job["id"], float("nan"), 60.0)
    job["wait"] = {"kind": "task", "task_id": entry.task_id, "member": entry.member, "queue": entry.queue}
    job["status"] = "waiting_for_worker"
    assert storage.commit_job_changes(job, 0, JobChanges([Enqueue(entry)])) == "invalid"
    stored = storage.get_job(job["id"])
    assert stored["seq"] == 0 and stored["status"] == "pending" and "task" not in stored
    assert storage.queue_length("t") == 0
    assert storage.commit_job(job, 0, watch_until=float("inf")) is False
    assert storage.get_job(job["id"])["seq"] == 0


def test_emptied_requirement_classes_are_forgotten(storage):  # noqa: F811
    """150 distinct `max_cost` values used to leave 150 classes that every claim walked for ever."""
    entries = [queued(storage, task_type="cost", requirements={"max_cost": 1.0 + i / 1000}) for i in range(150)]
    assert len(storage.queue_classes("cost")) == 150
    rich = capabilities({"worker_id": "rich", "cost_per_second": 0.0})
    for _ in range(149):
        assert claim(storage, "rich", rich, types=("cost",)) is not None
    assert len(storage.queue_classes("cost")) == 1
    last = entries[-1] if entries[-1].queue in storage.queue_classes("cost") else entries[0]
    job = storage.get_job(last.job_id)
    withdraw = JobChanges([Withdraw(last.queue, last.member, required=True)])
    assert storage.commit_job_changes(job, job["seq"], withdraw) == "ok"
    assert storage.queue_classes("cost") == [] and storage.queue_length("cost") == 0


def test_poll_entries_of_a_crashed_api_process_are_purged(storage):  # noqa: F811
    """A process that dies mid-poll never removes its entry: the sweep's purge does, once the poll ended."""
    now = time.time()
    storage.set_poller("crashed|p1", ["purge-t"], now - 60)  # its poll ended a minute ago
    storage.set_poller("alive|p2", ["purge-t"], now + 60)
    assert storage.purge_expired(now) >= 1
    assert storage.pollers("purge-t", 0) == ["alive|p2"]


def test_a_native_branch_retry_is_published_with_its_lease(storage, request):  # noqa: F811
    """Redis mode: the retry's Celery message is pushed by the script that records the failed attempt (it
    exists if and only if the new lease does); a refused record pushes nothing. Memory cannot publish."""
    job = a_job()
    storage.create_job(job)
    first = Lease("b1~1", job["id"], NATIVE_WORKER, time.time() + 60, "n")
    changes = JobChanges([StoreBranches(job["id"], {"b1": {"task_id": "b1~1", "native": True}}), GrantLease(first)])
    assert storage.commit_job_changes(job, 0, changes) == "ok"
    retry = Lease("b1~2", job["id"], NATIVE_WORKER, time.time() + 60, "n")
    record = {"task_id": "b1~2", "native": True, "attempt": 2}
    if "memory" in request.node.callspec.id:
        with pytest.raises(NotImplementedError):
            storage.record_branch(job["id"], "b1", "b1~1", NATIVE_WORKER, "a", None, record, None, retry, ("q", "m"))
        return
    queue = f"{storage.prefix}:test-native-queue"  # a Celery queue stands outside the prefix; flushed here
    nan = Lease("b1~2", job["id"], NATIVE_WORKER, float("nan"), "n")
    refused = [  # not the lease holder; a stale attempt; a deadline storage cannot hold
        ("someone", "b1~1", retry, "lease"),
        (NATIVE_WORKER, "b1~0", retry, "lease"),
        (NATIVE_WORKER, "b1~1", nan, "invalid"),
    ]
    for worker, task_id, lease, verdict in refused:
        found = storage.record_branch(job["id"], "b1", task_id, worker, "a", None, record, None, lease, (queue, "m"))
        assert found[0] == verdict
    assert storage.client.llen(queue) == 0 and storage.get_lease("b1~2") is None
    found = storage.record_branch(job["id"], "b1", "b1~1", NATIVE_WORKER, "a", None, record, None, retry, (queue, "m"))
    assert found[0] == "ok"
    assert storage.client.lrange(queue, 0, -1) == [b"m"]
    assert storage.get_lease("b1~2") is not None and storage.get_lease("b1~1") is None
