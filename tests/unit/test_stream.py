"""The event stream (issue 8): typed events after each successful commit, from every writer of a job, worker
events, and subscribers that cannot hurt a job. Memory storage and an inline scheduler: pure logic."""

from __future__ import annotations

import time

from avtomatika import OrchestratorEngine, StateMachineBlueprint
from avtomatika.config import Config
from avtomatika.context import ClientConfig
from avtomatika.core import InlineScheduler
from avtomatika.service import Orchestrator
from avtomatika.storage import MemoryStorage
from avtomatika.stream import JobEvent, WorkerEvent

CLIENT = ClientConfig("c1")

tasks = StateMachineBlueprint("tasks")


@tasks.handler_for("start", is_start=True)
def dispatch(actions, initial_data):
    actions.dispatch_task("render", {"n": 1}, {"success": "finished"}, timeout_seconds=initial_data.get("timeout", 30))


two = StateMachineBlueprint("two")


@two.handler_for("start", is_start=True)
def first(actions):
    actions.transition_to("finished")


class Setup:
    def __init__(self, **settings) -> None:
        config = Config({})
        config.TASK_RETRY_BASE_SECONDS = 0.0
        for name, value in settings.items():
            setattr(config, name, value)
        self.engine = OrchestratorEngine(MemoryStorage(), config)
        self.engine.register_blueprint(tasks)
        self.engine.register_blueprint(two)
        self.sched = InlineScheduler()
        self.service = Orchestrator(self.engine, self.sched)
        self.events: list = []
        self.engine.stream.subscribe(self.events.append)

    def create(self, name: str, data: dict | None = None) -> str:
        job_id = self.service.create_job(name, data or {}, CLIENT)
        self.sched.drain(self.service.run_step)
        return job_id

    def kinds(self, job_id: str) -> list[str]:
        return [e.kind for e in self.events if isinstance(e, JobEvent) and e.job_id == job_id]

    def of(self, job_id: str, kind: str) -> list[JobEvent]:
        return [e for e in self.events if isinstance(e, JobEvent) and e.job_id == job_id and e.kind == kind]


def test_a_failing_subscriber_is_logged_and_hurts_neither_the_job_nor_the_others(caplog):
    s = Setup()

    def broken(event):
        raise RuntimeError("metrics backend is down")

    s.engine.stream.subscribe(broken)
    later: list = []
    unsubscribe = s.engine.stream.subscribe(later.append)
    job_id = s.create("two")
    assert s.service.storage.get_job(job_id)["status"] == "finished"
    assert s.kinds(job_id) == ["job_created", "state_started", "state_finished", "job_finished"]
    assert [e.kind for e in later] == s.kinds(job_id)
    assert "metrics backend is down" in caplog.text
    unsubscribe()
    s.create("two")
    assert len(later) == 4


def test_events_carry_the_commit_counter_status_and_microsecond_timestamps():
    s = Setup()
    job_id = s.create("two")
    created, started, finished, ended = [e for e in s.events if isinstance(e, JobEvent)]
    assert (created.seq, created.status) == (0, "pending")
    assert (started.seq, finished.seq, ended.seq) == (1, 1, 1)
    assert (finished.previous_state, finished.next_state) == ("start", "finished")
    assert ended.status == "finished" and ended.duration_ms >= 0
    assert created.timestamp <= started.timestamp <= ended.timestamp
    assert created.details == {"client_id": "c1"} and created.job_id == job_id


def test_a_task_through_start_failure_retry_timeout_and_cancel():
    s = Setup()
    s.service.register_worker({"worker_id": "w1", "supported_tasks": ["render"], "dynamic_token": "secret"})
    job_id = s.create("tasks")
    assert s.kinds(job_id) == ["job_created", "state_started", "state_finished", "task_dispatched"]

    task = s.service.next_task("w1")
    failure = {"status": "failure", "error": {"code": "TRANSIENT_ERROR", "message": "GPU hiccup"}}
    s.service.accept_result(job_id, task["task_id"], "w1", failure)
    (done,) = s.of(job_id, "task_finished")
    assert (done.worker_id, done.outcome, done.attempt, done.task_id) == ("w1", "failure", 1, task["task_id"])
    assert s.of(job_id, "task_retry")[0].details["failed_attempt"] == 1
    s.sched.drain(s.service.run_step)
    assert s.of(job_id, "task_dispatched")[-1].attempt == 2

    second = s.service.next_task("w1")
    assert [e.worker_id for e in s.of(job_id, "task_started")] == ["w1", "w1"]
    s.service.events.expire_leases(now=time.time() + 3600)  # the worker never answers
    (timeout,) = s.of(job_id, "task_timeout")
    assert (timeout.worker_id, timeout.outcome, timeout.task_id) == ("w1", "timeout", second["task_id"])
    s.sched.drain(s.service.run_step)

    s.service.next_task("w1")
    s.service.events.cancel_job(job_id)
    assert s.kinds(job_id)[-1] == "job_cancelled"
    assert s.of(job_id, "job_cancelled")[0].details["error_message"] == "cancelled by the client"

    registered = [e for e in s.events if isinstance(e, WorkerEvent)]
    assert [e.kind for e in registered] == ["registered"]
    assert "dynamic_token" not in registered[0].snapshot and registered[0].snapshot["supported_tasks"] == ["render"]


def test_a_dispatch_timeout_is_a_task_timeout_without_a_worker():
    s = Setup()
    job_id = s.service.create_job("tasks", {}, CLIENT, dispatch_timeout=1)
    s.sched.drain(s.service.run_step)
    s.service.events.sweep_due_jobs(now=time.time() + 3600)
    (timeout,) = s.of(job_id, "task_timeout")
    assert timeout.worker_id is None and "dispatch_timeout" in timeout.details["reason"]
    assert s.kinds(job_id)[-1] == "job_failed"


def test_worker_status_updates_and_expiry_are_worker_events():
    s = Setup(WORKER_HEALTH_CHECK_INTERVAL_SECONDS=1)
    s.service.register_worker({"worker_id": "w2", "supported_tasks": ["render"]})
    s.service.heartbeat("w2", None)  # a TTL refresh is no event
    s.service.heartbeat("w2", {"status": "busy", "load": 0.5})
    assert s.service.sweep(time.time() + 60) >= 0
    worker = [(e.kind, e.worker_id) for e in s.events if isinstance(e, WorkerEvent)]
    assert worker == [("registered", "w2"), ("status_update", "w2"), ("expired", "w2")]
    update = [e for e in s.events if isinstance(e, WorkerEvent) and e.kind == "status_update"][0]
    assert (update.snapshot["status"], update.snapshot["load"]) == ("busy", 0.5)


def test_a_subscriber_may_listen_to_some_kinds_only():
    s = Setup()
    ends: list = []
    s.engine.stream.subscribe(ends.append, kinds=["job_finished", "job_failed"])
    assert s.engine.stream.wants("job_finished") and s.engine.stream.wants("task_started")  # `events` wants all
    job_id = s.create("two")
    assert [(e.kind, e.job_id) for e in ends] == [("job_finished", job_id)]
    from avtomatika.stream import EventStream

    only_ends = EventStream()
    only_ends.subscribe(ends.append, kinds=["job_finished"])
    assert only_ends.active and not only_ends.wants("task_started")
