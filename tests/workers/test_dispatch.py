"""Dispatching (SPEC §4): queue order, requirement matching, stale leases, availability. Which blocked
long-poll a dispatch wakes (strategies) is in test_wake.py.

Every test runs in both modes (embedded; Redis with gunicorn + a Celery worker process) and uses task types
of its own, so tasks of other tests are never in its way.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.workers.support import (
    A100,
    create_task_job,
    is_json_error,
    queued_job,
    raw_poll,
    unique,
    view,
    worker,
)

# -- queue order ------------------------------------------------------------------------------------------


def test_higher_priority_first_and_fifo_among_equals(orchestrator):
    task_type = unique("prio")
    priorities = [1, 5, 3, 5, -1.5, 3]
    jobs = [queued_job(orchestrator, task_type, priority=p, text=str(i)) for i, p in enumerate(priorities)]
    w = worker(orchestrator, task_type)
    served = [w.poll_until() for _ in priorities]
    # 5 (first), 5 (second), 3 (first), 3 (second), 1, -1.5
    assert [t["job_id"] for t in served] == [jobs[i] for i in (1, 3, 2, 5, 0, 4)]
    assert [t["priority"] for t in served] == [5, 5, 3, 3, 1, -1.5]
    assert [t["params"]["text"] for t in served] == ["1", "3", "2", "5", "0", "4"]
    for task in served:
        assert w.result(task, status="success").status_code == 200


def test_fifo_among_many_equal_priorities(orchestrator):
    task_type = unique("fifo")
    jobs = [queued_job(orchestrator, task_type, priority=2) for _ in range(5)]
    w = worker(orchestrator, task_type)
    assert [w.poll_until()["job_id"] for _ in jobs] == jobs


# -- requirement matching ---------------------------------------------------------------------------------

CASES = {
    "gpu_model": (
        {"requirements": {"gpu_info": {"model": "A100"}}},
        [{}, {"resources": {"gpu_info": {"model": "RTX 4090", "vram_gb": 24}}}],
        {"resources": A100},
    ),
    "gpu_model_and_vram": (
        {"requirements": {"gpu_info": {"model": "a100", "vram_gb": 60}}},
        [{}, {"resources": {"gpu_info": {"model": "A100-PCIE", "vram_gb": 40}}}, {"resources": {"cpu_cores": 64}}],
        {"resources": A100},
    ),
    "vram_only": (
        {"requirements": {"gpu_info": {"vram_gb": 16}}},
        [{}, {"resources": {"gpu_info": {"model": "T4", "vram_gb": 15.5}}}],
        {"resources": {"gpu_info": {"model": "L4", "vram_gb": 16}}},
    ),
    "installed_models": (
        {"requirements": {"installed_models": [{"name": "llama-3-8b"}, {"name": "whisper"}]}},
        [
            {},
            {"installed_models": [{"name": "llama-3-8b", "version": "1"}]},
            {"installed_models": [{"name": "whisper"}, {"name": "llama-3-70b"}]},
        ],
        {"installed_models": [{"name": "sd-xl"}, {"name": "whisper"}, {"name": "llama-3-8b", "version": "2"}]},
    ),
    "max_cost": (
        {"max_cost": 0.5},
        [{"cost_per_second": 0.51}, {"cost_per_second": 3}],
        {"cost_per_second": 0.5},
    ),
    "everything": (
        {"requirements": {"gpu_info": {"model": "A100", "vram_gb": 80}, "installed_models": ["sd-xl"]}, "max_cost": 2},
        [
            {"resources": A100, "installed_models": [{"name": "sd-xl"}], "cost_per_second": 2.5},
            {"resources": A100, "cost_per_second": 1},
            {"resources": {"gpu_info": {"model": "A100", "vram_gb": 79}}, "installed_models": [{"name": "sd-xl"}]},
        ],
        {"resources": A100, "installed_models": [{"name": "sd-xl"}], "cost_per_second": 2},
    ),
}


def test_tasks_go_only_to_workers_meeting_their_requirements(orchestrator):
    """Every incapable worker polls (concurrently) and gets nothing; then the capable one gets the task."""
    setups = {}
    for name, (initial, incapable, capable) in CASES.items():
        task_type = unique(name)
        job_id = queued_job(orchestrator, task_type, **initial)
        setups[name] = (
            job_id,
            [worker(orchestrator, task_type, **r) for r in incapable],
            worker(orchestrator, task_type, **capable),
        )
    refused = [w for _, incapable, _ in setups.values() for w in incapable]
    with ThreadPoolExecutor(len(refused)) as pool:
        answers = list(pool.map(raw_poll, refused))
    assert [status for status, _, _ in answers] == [204] * len(refused), [
        (w.record, task) for w, (_, task, _) in zip(refused, answers, strict=True) if task
    ]
    for name, (job_id, _, capable) in setups.items():
        task = capable.poll()
        assert task is not None and task["job_id"] == job_id, name
        assert view(orchestrator, job_id)["worker_id"] == capable.worker_id


# -- waiting and waking -----------------------------------------------------------------------------------


def test_task_waits_until_a_worker_registers(orchestrator):
    task_type = unique("later")
    job_id = queued_job(orchestrator, task_type)
    view_before = view(orchestrator, job_id)
    assert view_before["status"] == "waiting_for_worker" and view_before["error_message"] is None
    w = worker(orchestrator, task_type)
    task = w.poll()  # a poll that timed out would answer no task
    assert task is not None and task["job_id"] == job_id
    assert w.result(task, status="success").json() == {"status": "result_accepted_success"}
    assert orchestrator.wait(job_id)["status"] == "finished"


# -- leases -----------------------------------------------------------------------------------------------


def test_result_after_the_lease_moved_is_stale(orchestrator, engine):
    """Lease expired → attempt 2 went to another worker → the first worker's result is 409, changes nothing."""
    task_type = unique("lease")
    first = worker(orchestrator, task_type)
    job_id = create_task_job(orchestrator, task_type, timeout=30)
    task = first.poll_until()
    assert task["job_id"] == job_id and task["attempt"] == 1
    assert view(orchestrator, job_id)["worker_id"] == first.worker_id
    # the sweep, run at the lease's deadline
    assert engine.events.expire_leases(now=task["deadline"] + 0.001) >= 1
    second = worker(orchestrator, task_type)
    again = second.poll_until()
    assert again["job_id"] == job_id and again["attempt"] == 2 and again["task_id"] != task["task_id"]
    before = view(orchestrator, job_id)
    assert before["status"] == "waiting_for_worker"
    assert (before["task_id"], before["worker_id"]) == (again["task_id"], second.worker_id)
    assert before["retry_count"] == 1 and "lease expired" in before["error_message"]

    late = first.result(task, status="success", data={"late": True})
    body = is_json_error(late, 409)
    assert "stale" in body["error"]
    foreign = first.result(again, status="success", data={"late": True})  # a task it never held
    is_json_error(foreign, 409)
    assert view(orchestrator, job_id) == before

    assert second.result(again, status="success", data={"by": "second"}).json() == {"status": "result_accepted_success"}
    done = orchestrator.wait(job_id)
    assert done["status"] == "finished" and done["state_history"]["by"] == "second"
    assert "late" not in done["state_history"]
    is_json_error(first.result(task, status="success", data={"late": True}), 409)
    assert orchestrator.wait(job_id) == done


def test_result_after_the_job_timed_out_is_stale(orchestrator, engine):
    """result_timeout fails the job while a worker holds its task: the worker's late result is 409."""
    task_type = unique("timeout")
    w = worker(orchestrator, task_type)
    job_id = orchestrator.create("/api/v1/jobs/tasks", {"initial_data": {"task_type": task_type}, "result_timeout": 5})
    task = w.poll_until()
    assert task["job_id"] == job_id
    created = view(orchestrator, job_id)["created_at"]
    # the sweep, run when the job's deadline has passed
    assert engine.events.sweep_due_jobs(now=created + 5.001) >= 1
    failed = orchestrator.wait(job_id)
    assert failed["status"] == "failed" and "result_timeout" in failed["error_message"]
    is_json_error(w.result(task, status="success", data={"late": True}), 409)
    assert orchestrator.wait(job_id) == failed


def test_job_view_shows_the_current_task_while_waiting(orchestrator):
    task_type = unique("view")
    job_id = queued_job(orchestrator, task_type)
    queued = view(orchestrator, job_id)
    assert queued["task_type"] == task_type and queued["worker_id"] is None
    assert isinstance(queued["task_id"], str) and queued["task_id"]
    w = worker(orchestrator, task_type)
    task = w.poll_until()
    held = view(orchestrator, job_id)
    assert (held["task_id"], held["task_type"], held["worker_id"]) == (task["task_id"], task_type, w.worker_id)
    assert held["status"] == "waiting_for_worker" and held["current_state"] == "start"
    w.result(task, status="success")
    done = orchestrator.wait(job_id)
    assert not {"task_id", "task_type", "worker_id"} & set(done)


# -- availability: draining, offline, max_concurrent_tasks -------------------------------------------------


@pytest.mark.parametrize("status", ["draining", "offline"])
def test_a_draining_or_offline_worker_gets_no_task(orchestrator, status):
    task_type = unique(status)
    job_id = queued_job(orchestrator, task_type)
    w = worker(orchestrator, task_type)
    assert w.heartbeat({"status": status}).status_code == 200
    code, task, _ = raw_poll(w)
    assert (code, task) == (204, None)
    assert view(orchestrator, job_id)["status"] == "waiting_for_worker"
    assert w.heartbeat({"status": "idle"}).status_code == 200
    assert w.poll_until()["job_id"] == job_id


def test_a_worker_at_max_concurrent_tasks_gets_no_more(orchestrator):
    task_type = unique("slots")
    first, second = queued_job(orchestrator, task_type), queued_job(orchestrator, task_type)
    w = worker(orchestrator, task_type, resources={"max_concurrent_tasks": 1})
    task = w.poll_until()
    assert task["job_id"] == first
    code, _, _ = raw_poll(w)
    assert code == 204  # one lease held = its limit
    assert view(orchestrator, second)["status"] == "waiting_for_worker"
    assert w.result(task, status="success").status_code == 200
    assert w.poll_until()["job_id"] == second
