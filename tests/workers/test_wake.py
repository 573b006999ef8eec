"""Which blocked long-poll a dispatch wakes (SPEC §4): a new task wakes a blocked poll, never an incapable
one, and each strategy wakes its preferred worker.

Every test runs in both modes against an orchestrator that holds long-polls for `LONG_POLL_TIMEOUT` (10 s,
the `long_poll_*` fixtures) instead of the session's 2 s: the polls of a `PollGroup` are armed with at least
`PollGroup.MARGIN` (6 s) left, so a dispatch decided late on a loaded machine still finds them blocked (a
poll that timed out meanwhile would let another worker win). No test waits for a poll's timeout: the polls
that must stay idle are checked while they still block, then left to end on their own.
"""

from __future__ import annotations

import time

import pytest

from tests.workers.support import A100, PollGroup, create_task_job, queued_job, unique, wait_status, worker


@pytest.fixture(params=["embedded", "redis"])
def orchestrator(request: pytest.FixtureRequest):
    """This module's orchestrator (the `engine` fixture follows it): long-polls are held for 10 s."""
    return request.getfixturevalue("long_poll_embedded" if request.param == "embedded" else "long_poll_redis")


# -- waking -----------------------------------------------------------------------------------------------


def test_blocked_long_poll_is_woken_by_a_new_task(orchestrator, engine):
    task_type = unique("wake")
    w = worker(orchestrator, task_type)
    group = PollGroup([w], engine.storage, task_type)
    group.arm()
    job_id = create_task_job(orchestrator, task_type)
    winner, task, _ = group.woken()  # checks that it returned before its poll's timeout: it was woken
    group.close()
    assert winner == w.worker_id and task["job_id"] == job_id


def test_incapable_blocked_poll_is_not_served(orchestrator, engine):
    """A worker without the GPU, blocked in its poll when a task needing one arrives, does not get it."""
    task_type = unique("gpu")
    cpu = worker(orchestrator, task_type, resources={"cpu_cores": 8})
    group = PollGroup([cpu], engine.storage, task_type)
    group.arm()
    job_id = create_task_job(orchestrator, task_type, requirements={"gpu_info": {"model": "A100", "vram_gb": 40}})
    wait_status(orchestrator, job_id, "waiting_for_worker")
    gpu = worker(orchestrator, task_type, resources=A100)
    assert gpu.poll()["job_id"] == job_id  # the task was still queued: the blocked cpu poll did not take it
    assert group.blocked() == {cpu.worker_id}  # ... and it still blocks, on the server too
    assert cpu.worker_id in {p.partition("|")[0] for p in engine.storage.pollers(task_type, time.time())}
    group.close()


# -- strategies: which blocked poll is woken --------------------------------------------------------------


def _strategy_workers(orchestrator, task_type, records):
    """Workers with ids sorted as listed (a tie-break by id can then be told apart from a real choice)."""
    prefix = unique("s")
    return [worker(orchestrator, task_type, f"{prefix}-{i}", **r) for i, r in enumerate(records)]


def _first_woken(orchestrator, engine, workers, task_type, **initial):
    group = PollGroup(workers, engine.storage, task_type)
    try:
        group.arm()
        job_id = create_task_job(orchestrator, task_type, **initial)
        winner, task, _ = group.woken()
        assert task["job_id"] == job_id
        return winner
    finally:
        group.close()


@pytest.mark.parametrize(
    ("strategy", "records", "expected"),
    [
        # default: hot cache first, then the cheapest among them; the cheapest overall has no hot cache
        (
            "default",
            [
                {"cost_per_second": 0.01},
                {"cost_per_second": 0.5, "hot_cache": "T"},
                {"cost_per_second": 0.2, "hot_cache": "T"},
            ],
            2,
        ),
        # default without any hot cache: the cheapest
        (
            "default",
            [{"cost_per_second": 0.3}, {"cost_per_second": 0.1}, {"cost_per_second": 0.2, "hot_cache": ["other"]}],
            1,
        ),
        # cheapest ignores the hot cache
        (
            "cheapest",
            [{"cost_per_second": 0.3, "hot_cache": "T"}, {"cost_per_second": 0.2}, {"cost_per_second": 0.1}],
            2,
        ),
    ],
    ids=["default-hot-cache", "default-cheapest", "cheapest"],
)
def test_strategy_wakes_the_preferred_worker(orchestrator, engine, strategy, records, expected):
    task_type = unique(strategy)
    records = [{**r, "hot_cache": ["unrelated", task_type]} if r.get("hot_cache") == "T" else r for r in records]
    workers = _strategy_workers(orchestrator, task_type, records)
    assert _first_woken(orchestrator, engine, workers, task_type, strategy=strategy) == workers[expected].worker_id


def test_best_value_weighs_cost_by_reputation(orchestrator, engine):
    task_type = unique("best")
    # cost / reputation: 0.1/0.05 = 2.0, 0.4/1.0 = 0.4, 0.3/0.5 = 0.6; the cheapest is the worst value
    workers = _strategy_workers(
        orchestrator, task_type, [{"cost_per_second": 0.1}, {"cost_per_second": 0.4}, {"cost_per_second": 0.3}]
    )
    for w, reputation in zip(workers, [0.05, 1.0, 0.5], strict=True):
        (record,) = engine.storage.get_workers([w.worker_id])
        record["reputation"] = reputation  # set by the orchestrator's reputation job, never by the worker
        engine.storage.save_worker(record, 120, time.time())
    assert _first_woken(orchestrator, engine, workers, task_type, strategy="best_value") == workers[1].worker_id
    # with equal reputations best_value is the cheapest
    task_type = unique("best")
    workers = _strategy_workers(
        orchestrator, task_type, [{"cost_per_second": 0.4}, {"cost_per_second": 0.1}, {"cost_per_second": 0.3}]
    )
    assert _first_woken(orchestrator, engine, workers, task_type, strategy="best_value") == workers[1].worker_id


def test_round_robin_takes_turns(orchestrator, engine):
    task_type = unique("rr")
    # the cheapest worker would win every time under default/cheapest
    workers = _strategy_workers(orchestrator, task_type, [{"cost_per_second": 0.0}, {"cost_per_second": 1}, {}])
    group = PollGroup(workers, engine.storage, task_type)
    winners = []
    try:
        for _ in range(4):
            group.arm()
            create_task_job(orchestrator, task_type, strategy="round_robin")
            winners.append(group.woken()[0])
    finally:
        group.close()
    assert len(set(winners[:3])) == 3 and winners[3] == winners[0], winners


def test_least_connections_prefers_the_worker_holding_fewer_leases(orchestrator, engine):
    task_type = unique("lc")
    # the cheapest (and lowest id) worker holds the most leases
    workers = _strategy_workers(
        orchestrator, task_type, [{"cost_per_second": 0.0}, {"cost_per_second": 1}, {"cost_per_second": 2}]
    )
    for w, leases in zip(workers, [2, 1, 3], strict=True):
        for _ in range(leases):
            job_id = queued_job(orchestrator, task_type)
            assert w.poll()["job_id"] == job_id
    assert engine.storage.active_tasks([w.worker_id for w in workers]) == [2, 1, 3]
    winner = _first_woken(orchestrator, engine, workers, task_type, strategy="least_connections")
    assert winner == workers[1].worker_id
