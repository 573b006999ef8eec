"""Reputation from history (SPEC §5, §8): recomputed by the sweep from attempt outcomes, ignored when a worker
sends it, and what separates `best_value` from `cheapest`."""

from __future__ import annotations

import time
import uuid

import pytest

from avtomatika import OrchestratorEngine
from avtomatika.config import Config
from avtomatika.storage import MemoryStorage
from avtomatika.storage.redis import RedisStorage
from avtomatika.stream import JobEvent

TASK = "render"


@pytest.fixture(params=["memory", "redis"])
def storage(request: pytest.FixtureRequest):
    if request.param == "memory":
        return MemoryStorage()
    url = request.getfixturevalue("redis_url")
    return RedisStorage(url + "/4", prefix=f"rep-{uuid.uuid4().hex[:8]}")


def attempts(worker_id: str, outcomes: list[str]) -> list[JobEvent]:
    job = str(uuid.uuid4())
    return [
        JobEvent(
            kind="task_timeout" if outcome == "timeout" else "task_finished",
            job_id=job,
            blueprint="bp",
            state="start",
            status="running",
            seq=n + 1,
            worker_id=worker_id,
            task_id=f"{job}-{n}",
            outcome=outcome,
        )
        for n, outcome in enumerate(outcomes)
    ]


def test_a_worse_record_loses_best_value_but_still_wins_cheapest(storage, history_url):
    config = Config({"HISTORY_DATABASE_URI": history_url})
    engine = OrchestratorEngine(storage, config)
    service = engine.service
    now = time.time()
    workers = {
        "cheap-but-flaky": {"cost_per_second": 0.1},
        "dearer-but-solid": {"cost_per_second": 0.3},
    }
    for worker_id, extra in workers.items():
        # a worker claiming a perfect reputation is not believed
        service.register_worker({"worker_id": worker_id, "supported_tasks": [TASK], "reputation": 1.0, **extra})
    flaky = ["success", "failure", "timeout", "failure", "timeout", "failure"]
    engine.stream.emit(attempts("cheap-but-flaky", flaky))
    engine.stream.emit(attempts("dearer-but-solid", ["success"] * 5))
    assert service.history.writer.flush(20)

    assert service.sweep(now) >= 0  # the sweep recomputes every live worker's reputation from history
    live = storage.get_workers(list(workers))
    assert [w["reputation"] for w in live] == [pytest.approx(2 / 7), 1.0]  # (successes + 1) / (attempts + 1)
    # cost / reputation: 0.1 / (2/7) = 0.35 against 0.3 / 1.0 = 0.3
    assert service.dispatcher.choose(live, "best_value", TASK) == "dearer-but-solid"
    assert service.dispatcher.choose(live, "cheapest", TASK) == "cheap-but-flaky"

    # re-registering (sending a reputation again) keeps the computed one
    service.register_worker({"worker_id": "cheap-but-flaky", "supported_tasks": [TASK], "reputation": 1.0})
    assert storage.get_workers(["cheap-but-flaky"])[0]["reputation"] == pytest.approx(2 / 7)
    service.history.writer.stop()


def test_reputation_stays_when_history_is_unreachable(storage, tmp_path):
    # a database that cannot be opened: the sweep logs and carries on, reputations are left as they were
    config = Config({"HISTORY_DATABASE_URI": f"sqlite:///{tmp_path}/missing-dir/history.db"})
    engine = OrchestratorEngine(storage, config)
    engine.service.register_worker({"worker_id": "w", "supported_tasks": [TASK]})
    assert engine.service.sweep(time.time()) >= 0
    assert storage.get_workers(["w"])[0]["reputation"] == 1.0
    engine.service.history.writer.stop()
