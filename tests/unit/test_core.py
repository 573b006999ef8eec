"""The engine core without Celery: steps run inline from an `InlineScheduler` (SPEC §1, §3)."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from avtomatika import OrchestratorEngine, StateMachineBlueprint
from avtomatika.config import Config
from avtomatika.context import ClientConfig
from avtomatika.core import InlineScheduler
from avtomatika.job import job_view
from avtomatika.ops import JobChanges
from avtomatika.results import TaskEvents
from avtomatika.storage import MemoryStorage
from avtomatika.stream import JOB_ENDS, JobEvent

CLIENT = ClientConfig("c1", plan="pro", params={"tier": "gold"})
FAR_FUTURE = time.time() + 10 * 365 * 24 * 3600


class Recorder:
    """Subscribes to the event stream; keeps the events the old hook tests looked at, plus every event."""

    NAMES = {"job_created": "job_created", "state_finished": "state_finished", "state_failed": "step_failed"}

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.all: list[JobEvent] = []

    def handle(self, event):
        self.all.append(event)
        if event.kind in self.NAMES:
            self.events.append((self.NAMES[event.kind], event.job_id if event.kind == "job_created" else event.state))
        elif event.kind in JOB_ENDS.values():
            self.events.append(("job_ended", event.status))


class Harness:
    def __init__(self, *blueprints: StateMachineBlueprint, **settings) -> None:
        config = Config({})
        for name, value in settings.items():
            setattr(config, name, value)
        self.storage = MemoryStorage()
        self.engine = OrchestratorEngine(self.storage, config)
        for bp in blueprints:
            self.engine.register_blueprint(bp)
        self.hooks = Recorder()
        self.engine.stream.subscribe(self.hooks)
        self.sched = InlineScheduler()
        self.core = self.engine.build_core(self.sched)

    def create(self, name: str, initial_data: dict | None = None, client: ClientConfig = CLIENT, **kwargs) -> str:
        job_id, created = self.core.create_job(name, initial_data or {}, client, **kwargs)
        assert created
        return job_id

    def run(self, name: str, initial_data: dict | None = None) -> dict:
        job_id = self.create(name, initial_data)
        self.sched.drain(self.core.run_step)
        return self.job(job_id)

    def step(self) -> str:
        """Run only the next queued step."""
        job_id, seq, _ = self.sched.pending.pop(0)
        return self.core.run_step(job_id, seq)

    def job(self, job_id: str) -> dict:
        job = self.storage.get_job(job_id)
        assert job is not None
        return job


def linear_blueprint(calls: list[str]) -> StateMachineBlueprint:
    bp = StateMachineBlueprint("linear")

    @bp.handler_for("start", is_start=True)
    def start(actions, state_history, value):
        calls.append("start")
        state_history["visited"] = ["start"]
        state_history["doubled"] = value * 2
        actions.transition_to("middle")

    @bp.handler_for("middle")
    async def middle(actions, state_history, doubled):
        calls.append("middle")
        state_history["visited"].append("middle")
        state_history["plus_one"] = doubled + 1
        actions.transition_to("done")

    @bp.handler_for("done", is_end=True)
    def done(state_history, client, job_id, current_state):
        calls.append("done")
        state_history["visited"].append("done")
        state_history["seen"] = [client.client_id, client.params, job_id, current_state]

    return bp


# -- happy paths -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("burst", [16, 1])
def test_linear_job_reaches_finished(burst):
    calls: list[str] = []
    h = Harness(linear_blueprint(calls), STEP_BURST=burst)
    job_id = h.create("linear", {"value": 21})
    assert h.job(job_id)["status"] == "pending"
    steps = h.sched.drain(h.core.run_step)
    job = h.job(job_id)
    assert job["status"] == "finished"
    assert job["current_state"] == "done"
    assert job["error_message"] is None
    assert job["finished_at"] is not None
    assert job["state_history"] == {
        "visited": ["start", "middle", "done"],
        "doubled": 42,
        "plus_one": 43,
        "seen": ["c1", {"tier": "gold"}, job_id, "done"],
    }
    assert calls == ["start", "middle", "done"]
    assert steps == (1 if burst == 16 else 3)
    assert job["seq"] == steps
    assert job["transitions"] == 2
    assert h.hooks.events == [
        ("job_created", job_id),
        ("state_finished", "start"),
        ("state_finished", "middle"),
        ("state_finished", "done"),
        ("job_ended", "finished"),
    ]
    assert h.storage.stalled_jobs(FAR_FUTURE) == []


def test_end_state_handler_can_still_transition():
    bp = StateMachineBlueprint("endmove")

    @bp.handler_for("start", is_start=True, is_end=True)
    def start(actions, initial_data):
        if initial_data.get("again"):
            actions.transition_to("finished")

    h = Harness(bp)
    assert h.run("endmove", {"again": True})["current_state"] == "finished"
    assert h.run("endmove", {})["current_state"] == "start"


@pytest.mark.parametrize(("target", "status"), [("failed", "failed"), ("finished", "finished")])
def test_reserved_end_states(target, status):
    bp = StateMachineBlueprint("reserved")

    @bp.handler_for("start", is_start=True)
    def start(actions, state_history):
        state_history["before"] = target
        actions.transition_to(target)

    h = Harness(bp)
    job = h.run("reserved")
    assert job["status"] == status
    assert job["current_state"] == target
    assert job["state_history"] == {"before": target}
    assert h.hooks.events[-1] == ("job_ended", status)


def test_conditional_handlers_choose_the_path():
    bp = StateMachineBlueprint("cond")

    @bp.handler_for("start", is_start=True)
    def start(actions, state_history):
        state_history["route"] = "normal"
        actions.transition_to("finished")

    @bp.handler_for("start").when("context.initial_data.size >= 100")
    def big(actions, state_history):
        state_history["route"] = "big"
        actions.transition_to("finished")

    h = Harness(bp)
    assert h.run("cond", {"size": 100})["state_history"] == {"route": "big"}
    assert h.run("cond", {"size": "100"})["state_history"] == {"route": "normal"}


# -- failures --------------------------------------------------------------------------------------------


def test_handler_without_action_in_non_end_state_fails_the_job():
    bp = StateMachineBlueprint("noaction")

    @bp.handler_for("start", is_start=True)
    def start(state_history):
        state_history["note"] = "kept"

    h = Harness(bp)
    job = h.run("noaction")
    assert job["status"] == "failed"
    assert "'start'" in job["error_message"] and "set no action" in job["error_message"]
    assert "is_end=True" in job["error_message"]
    assert job["state_history"] == {"note": "kept"}  # persisted whatever the action
    assert h.sched.pending == []


def test_dynamic_transition_to_unknown_state_fails_the_job():
    bp = StateMachineBlueprint("dyn")

    @bp.handler_for("start", is_start=True)
    def start(actions, target):
        actions.transition_to(target)

    job = Harness(bp).run("dyn", {"target": "nowhere"})
    assert job["status"] == "failed"
    assert "'nowhere'" in job["error_message"]


def flaky_blueprint(calls: list[int], fail_times: int) -> StateMachineBlueprint:
    bp = StateMachineBlueprint("flaky")

    @bp.handler_for("start", is_start=True)
    def start(actions, state_history):
        calls.append(1)
        state_history["tries"] = state_history.get("tries", 0) + 1
        state_history.setdefault("log", []).append(len(calls))
        if len(calls) <= fail_times:
            raise ValueError(f"the database is on fire ({len(calls)})")
        actions.transition_to("finished")

    return bp


def test_handler_exception_is_retried_then_quarantined():
    calls: list[int] = []
    h = Harness(flaky_blueprint(calls, fail_times=100))
    job_id = h.create("flaky")

    assert h.step() == "committed"
    job = h.job(job_id)
    assert job["status"] == "awaiting_retry"
    assert job["retry_count"] == 1
    assert "ValueError: the database is on fire (1)" in job["error_message"]
    assert len(h.sched.pending) == 1
    _, seq, delay = h.sched.pending[0]
    assert seq == job["seq"]
    assert 0.5 <= delay <= 0.5 * 1.25

    h.sched.drain(h.core.run_step)
    job = h.job(job_id)
    assert job["status"] == "quarantined"
    assert len(calls) == 4  # the first run plus JOB_MAX_RETRIES (3) retries
    assert job["retry_count"] == 4
    assert "the database is on fire (4)" in job["error_message"]
    assert "quarantined after 3 retries" in job["error_message"]
    assert "Traceback (most recent call last)" in job["error_traceback"]
    assert "ValueError: the database is on fire (4)" in job["error_traceback"]
    assert job["state_history"] == {}  # every failing run's mutations were discarded
    assert [e for e in h.hooks.events if e[0] == "step_failed"] == [("step_failed", "start")] * 4
    assert h.hooks.events[-1] == ("job_ended", "quarantined")
    assert h.sched.pending == []


def test_retry_delays_grow_exponentially():
    calls: list[int] = []
    h = Harness(flaky_blueprint(calls, fail_times=100), JOB_RETRY_BASE_SECONDS=1.0)
    h.create("flaky")
    delays = []
    for _ in range(3):
        h.step()
        delays.append(h.sched.pending[0][2])
    for attempt, delay in enumerate(delays):
        assert 2**attempt <= delay <= 2**attempt * 1.25


def test_job_max_retries_is_configurable():
    calls: list[int] = []
    h = Harness(flaky_blueprint(calls, fail_times=100), JOB_MAX_RETRIES=1)
    job = h.run("flaky")
    assert job["status"] == "quarantined"
    assert len(calls) == 2


def test_failing_handler_mutations_are_discarded_successful_ones_kept():
    calls: list[int] = []
    h = Harness(flaky_blueprint(calls, fail_times=2))
    job_id = h.create("flaky")
    h.step()
    assert h.job(job_id)["state_history"] == {}
    h.sched.drain(h.core.run_step)
    job = h.job(job_id)
    assert job["status"] == "finished"
    assert len(calls) == 3
    assert job["state_history"] == {"tries": 1, "log": [3]}
    assert job["error_message"] is None
    assert job["retry_count"] == 0


def test_mutations_of_earlier_states_in_a_burst_survive_a_later_failure():
    bp = StateMachineBlueprint("burst")

    @bp.handler_for("start", is_start=True)
    def start(actions, state_history):
        state_history["start"] = True
        actions.transition_to("boom")

    @bp.handler_for("boom")
    def boom(actions, state_history):
        state_history["boom"] = True
        raise RuntimeError("nope")

    h = Harness(bp, JOB_MAX_RETRIES=0)
    job = h.run("burst")
    assert job["status"] == "quarantined"
    assert job["current_state"] == "boom"
    assert job["state_history"] == {"start": True}


def test_unserialisable_state_history_is_a_handler_failure():
    bp = StateMachineBlueprint("unserialisable")

    @bp.handler_for("start", is_start=True)
    def start(actions, state_history):
        state_history["bad"] = object()
        actions.transition_to("finished")

    job = Harness(bp, JOB_MAX_RETRIES=0).run("unserialisable")
    assert job["status"] == "quarantined"
    assert "not JSON serializable" in job["error_message"]
    assert job["state_history"] == {}


def test_missing_injected_parameter_is_a_handler_failure():
    bp = StateMachineBlueprint("missing")

    @bp.handler_for("start", is_start=True)
    def start(actions, customer_id):
        actions.transition_to("finished")

    job = Harness(bp, JOB_MAX_RETRIES=0).run("missing")
    assert job["status"] == "quarantined"
    assert "'customer_id'" in job["error_message"]


def test_transition_loop_is_stopped_by_max_transitions():
    bp = StateMachineBlueprint("loop")

    @bp.handler_for("a", is_start=True)
    def a(actions):
        actions.transition_to("b")

    @bp.handler_for("b")
    def b(actions):
        actions.transition_to("a")

    h = Harness(bp, MAX_TRANSITIONS_PER_JOB=20)
    job = h.run("loop")
    assert job["status"] == "failed"
    assert "MAX_TRANSITIONS_PER_JOB (20)" in job["error_message"]
    assert job["transitions"] == 20
    assert h.sched.pending == []


def test_default_max_transitions_is_1000():
    bp = StateMachineBlueprint("loop")

    @bp.handler_for("a", is_start=True)
    def a(actions):
        actions.transition_to("a")

    job = Harness(bp).run("loop")
    assert job["status"] == "failed"
    assert job["transitions"] == 1000


def test_job_with_exactly_max_transitions_finishes():
    bp = StateMachineBlueprint("exact")

    @bp.handler_for("a", is_start=True)
    def a(actions):
        actions.transition_to("b")

    @bp.handler_for("b")
    def b(actions):
        actions.transition_to("finished")

    job = Harness(bp, MAX_TRANSITIONS_PER_JOB=2).run("exact")
    assert job["status"] == "finished", job["error_message"]


# -- exactly-once state changes ------------------------------------------------------------------------


def test_duplicate_step_message_is_dropped_as_stale():
    calls: list[str] = []
    h = Harness(linear_blueprint(calls), STEP_BURST=1)
    job_id = h.create("linear", {"value": 1})
    assert h.core.run_step(job_id, 0) == "committed"
    assert h.core.run_step(job_id, 0) == "stale"
    job = h.job(job_id)
    assert job["seq"] == 1
    assert job["current_state"] == "middle"
    assert job["state_history"]["visited"] == ["start"]
    assert calls == ["start"]
    h.sched.drain(h.core.run_step)
    assert h.job(job_id)["seq"] == 3
    for seq in range(3):
        assert h.core.run_step(job_id, seq) == "stale"
    assert calls == ["start", "middle", "done"]
    assert h.hooks.events.count(("job_ended", "finished")) == 1


def test_step_of_terminal_job_is_idle_and_unknown_job_is_missing():
    calls: list[str] = []
    h = Harness(linear_blueprint(calls))
    job = h.run("linear", {"value": 1})
    assert h.core.run_step(job["id"], job["seq"]) == "idle"
    assert h.core.run_step("no-such-job", 0) == "missing"
    assert calls == ["start", "middle", "done"]


def test_step_that_loses_the_compare_and_set_changes_nothing():
    bp = StateMachineBlueprint("race")
    h: Harness

    @bp.handler_for("start", is_start=True)
    def start(actions, job_id, state_history):
        interloper = h.storage.get_job(job_id)
        interloper["state_history"] = {"winner": "interloper"}
        assert h.storage.commit_job(interloper, interloper["seq"])
        state_history["winner"] = "step"
        actions.transition_to("finished")

    h = Harness(bp)
    job_id = h.create("race")
    before = list(h.hooks.events)
    assert h.step() == "conflict"
    job = h.job(job_id)
    assert job["seq"] == 1
    assert job["status"] == "pending"
    assert job["current_state"] == "start"
    assert job["state_history"] == {"winner": "interloper"}
    assert h.sched.pending == []
    assert h.hooks.events == before


def test_concurrent_duplicate_steps_apply_once():
    barrier = threading.Barrier(2, timeout=10)
    calls: list[int] = []
    bp = StateMachineBlueprint("dup")

    @bp.handler_for("start", is_start=True)
    def start(actions, state_history):
        calls.append(1)
        barrier.wait()  # both deliveries have loaded the job before either commits
        state_history["runs"] = state_history.get("runs", 0) + 1
        actions.transition_to("finished")

    h = Harness(bp)
    job_id = h.create("dup")
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(h.core.run_step(job_id, 0))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(results) == ["committed", "conflict"]
    assert len(calls) == 2  # at-least-once execution ...
    job = h.job(job_id)
    assert job["seq"] == 1
    assert job["status"] == "finished"
    assert job["state_history"] == {"runs": 1}  # ... exactly-once state change
    assert h.hooks.events.count(("job_ended", "finished")) == 1


# -- creation and recovery -------------------------------------------------------------------------------


def test_idempotency_key_is_scoped_to_the_client():
    calls: list[str] = []
    h = Harness(linear_blueprint(calls))
    first, created = h.core.create_job("linear", {"value": 1}, CLIENT, idempotency_key="k1")
    assert created
    again, created_again = h.core.create_job("linear", {"value": 2}, CLIENT, idempotency_key="k1")
    assert (again, created_again) == (first, False)
    other, other_created = h.core.create_job("linear", {"value": 1}, ClientConfig("c2"), idempotency_key="k1")
    assert other_created and other != first
    fresh, _ = h.core.create_job("linear", {"value": 1}, CLIENT, idempotency_key="k2")
    assert fresh not in (first, other)
    assert [job_id for job_id, _, _ in h.sched.pending] == [first, other, fresh]
    assert h.job(first)["initial_data"] == {"value": 1}
    assert [e for e in h.hooks.events if e[0] == "job_created"] == [
        ("job_created", first),
        ("job_created", other),
        ("job_created", fresh),
    ]


def test_create_job_without_key_always_creates():
    h = Harness(linear_blueprint([]))
    assert h.create("linear", {"value": 1}) != h.create("linear", {"value": 1})


def test_create_job_for_unknown_blueprint_raises():
    from avtomatika.errors import JobNotFound

    h = Harness(linear_blueprint([]))
    with pytest.raises(JobNotFound, match="'ghost'"):
        h.core.create_job("ghost", {}, CLIENT)
    assert h.sched.pending == []


def test_recover_stalled_resends_runnable_jobs_only():
    calls: list[str] = []
    h = Harness(linear_blueprint(calls))
    job_id = h.create("linear", {"value": 1})
    h.sched.pending.clear()  # the first step message is lost
    assert TaskEvents(h.core).sweep_due_jobs(now=time.time()) == 0  # not stalled yet
    assert TaskEvents(h.core).sweep_due_jobs(now=FAR_FUTURE) == 1
    assert [(j, s) for j, s, _ in h.sched.pending] == [(job_id, 0)]
    h.sched.drain(h.core.run_step)
    assert h.job(job_id)["status"] == "finished"
    assert TaskEvents(h.core).sweep_due_jobs(now=FAR_FUTURE) == 0
    assert h.sched.pending == []
    assert calls == ["start", "middle", "done"]


def test_recover_stalled_drops_terminal_jobs_from_the_watch_list():
    h = Harness(linear_blueprint([]))
    job = h.run("linear", {"value": 1})
    h.storage.watch_job(job["id"], 1.0)  # e.g. left over by a crash
    assert TaskEvents(h.core).sweep_due_jobs(now=FAR_FUTURE) == 0
    assert h.sched.pending == []
    assert h.storage.stalled_jobs(FAR_FUTURE) == []


def test_recovered_duplicate_is_dropped():
    calls: list[str] = []
    h = Harness(linear_blueprint(calls))
    job_id = h.create("linear", {"value": 1})
    assert TaskEvents(h.core).sweep_due_jobs(now=FAR_FUTURE) == 1  # a duplicate of the still-queued first step
    h.sched.drain(h.core.run_step)
    assert h.job(job_id)["status"] == "finished"
    assert calls == ["start", "middle", "done"]


def test_step_of_unregistered_blueprint_fails_the_job():
    h = Harness(linear_blueprint([]))
    job_id = h.create("linear", {"value": 1})
    del h.engine.blueprints["linear"]
    h.sched.drain(h.core.run_step)
    job = h.job(job_id)
    assert job["status"] == "failed"
    assert "'linear' is not registered" in job["error_message"]


@pytest.mark.parametrize("priority", [float("nan"), float("inf")])
def test_a_non_finite_or_non_numeric_priority_fails_the_job_clearly(priority):
    bp = StateMachineBlueprint("bad_priority")

    @bp.handler_for("start", is_start=True)
    def start(actions):
        actions.dispatch_task("echo", {}, {"success": "finished"}, priority=priority)

    h = Harness(bp)
    job = h.run("bad_priority")
    assert job["status"] == "failed"
    assert "priority must be a finite number" in job["error_message"]
    assert h.storage.queue_length("echo") == 0


def test_transitions_from_results_count_against_the_limit_too():
    """One `enter_state` counts every move, whatever caused it (here: a worker result)."""
    from avtomatika.outcomes import apply_result

    bp = StateMachineBlueprint("counted")

    @bp.handler_for("start", is_start=True)
    def start(actions):
        actions.dispatch_task("echo", {}, {"success": "start"})

    h = Harness(bp, MAX_TRANSITIONS_PER_JOB=3)
    job_id = h.create("counted")
    h.sched.drain(h.core.run_step)
    job = h.job(job_id)
    job["transitions"] = 3
    apply_result(job, {"status": "success"}, bp, h.engine.config)
    assert job["status"] == "failed" and "MAX_TRANSITIONS_PER_JOB (3)" in job["error_message"]


def test_task_retry_delay_doubles_with_jitter_and_is_capped():
    from avtomatika.outcomes import retry_delay

    for attempt in range(1, 12):
        ceiling = min(2.0 ** (attempt - 1), 60.0)
        delays = [retry_delay(attempt, 1.0) for _ in range(200)]
        assert all(ceiling * 0.5 <= d <= ceiling for d in delays), (attempt, min(delays), max(delays))
        assert max(delays) - min(delays) > ceiling * 0.1  # jittered, not one fixed value
    assert retry_delay(30, 0.05) <= 3.0  # 60 × base


def test_redeliveries_past_step_max_deliveries_quarantine_the_job():
    calls: list[str] = []
    h = Harness(linear_blueprint(calls), STEP_MAX_DELIVERIES=3)
    job_id = h.create("linear", {"value": 2})
    seq = h.job(job_id)["seq"]
    for _ in range(2):  # deliveries 2 and 3 ran the handler, and their worker died before the commit
        h.storage.count_delivery(job_id, seq, 60)
    assert h.core.run_step(job_id, seq, redelivered=True) == "poisoned"  # the 4th delivery
    job = h.job(job_id)
    assert job["status"] == "quarantined" and "delivered 4 times" in job["error_message"]
    assert "STEP_MAX_DELIVERIES=3" in job["error_message"]
    assert calls == []


def test_a_redelivery_within_step_max_deliveries_runs_the_step():
    calls: list[str] = []
    h = Harness(linear_blueprint(calls), STEP_MAX_DELIVERIES=2)
    job_id = h.create("linear", {"value": 2})
    assert h.core.run_step(job_id, h.job(job_id)["seq"], redelivered=True) == "committed"  # delivery 2
    assert calls[0] == "start"


def test_the_sweep_marks_its_resend_of_a_stalled_step():
    """A re-sent stalled step is counted when it runs (not when sent: copies in a backlog count nothing)."""
    from avtomatika.service import Orchestrator

    class Recording(InlineScheduler):
        def __init__(self) -> None:
            super().__init__()
            self.flags: list[bool] = []

        def schedule_step(self, job_id, seq, delay=0.0, *, blueprint="", state="", resent=False):
            self.flags.append(resent)
            super().schedule_step(job_id, seq, delay)

    calls: list[str] = []
    h = Harness(linear_blueprint(calls), STEP_STALL_SECONDS=1)
    scheduler = Recording()
    service = Orchestrator(h.engine, scheduler)
    job_id = h.create("linear", {"value": 1})  # its step message is lost (never run)
    assert service.events.sweep_due_jobs(time.time() + 10) == 1
    assert scheduler.flags == [True] and scheduler.pending[0][0] == job_id
    assert h.job(job_id)["status"] == "pending"  # sending counts nothing


def test_a_state_no_handler_serves_fails_at_once_with_one_clear_message(caplog):
    bp = StateMachineBlueprint("late")

    @bp.handler_for("start", is_start=True)
    def start(actions):
        actions.transition_to("check")

    @bp.handler_for("check")
    def check(actions):
        actions.transition_to("finished")

    h = Harness(bp)
    # The blueprint changes after registration (a deploy): `check` is now served by a condition only.
    bp.states["check"].default = None
    bp.handler_for("check").when("context.initial_data.kind == 'video'")(check)
    with caplog.at_level(logging.WARNING, logger="avtomatika.core"):
        job = h.run("late", {"kind": "audio"})
    assert job["status"] == "failed"
    assert job["retry_count"] == 0
    assert job["error_message"] == (
        "state 'check': no condition matched (context.initial_data.kind == 'video') and there is no default handler"
    )
    assert h.sched.pending == []
    assert f"job {job['id']} failed (no handler can run, so no retry): state 'check'" in caplog.text
    assert [e for e in h.hooks.events if e[0] in ("step_failed", "job_ended")] == [
        ("step_failed", "check"),
        ("job_ended", "failed"),
    ]


def test_a_job_at_a_state_the_blueprint_lost_fails_at_once():
    calls: list[int] = []
    bp = flaky_blueprint(calls, fail_times=0)
    h = Harness(bp)
    job_id = h.create("flaky")
    stored = h.job(job_id)
    stored["current_state"] = "removed"
    assert h.storage.commit_job_changes(stored, stored["seq"], JobChanges()) == "ok"
    h.sched.pending[:] = [(job_id, stored["seq"], 0.0)]
    h.sched.drain(h.core.run_step)
    job = h.job(job_id)
    assert job["status"] == "failed" and job["retry_count"] == 0 and calls == []
    assert job["error_message"] == "blueprint 'flaky' has no state 'removed'"


def test_handler_failures_are_logged_with_job_state_and_attempt(caplog):
    calls: list[int] = []
    h = Harness(flaky_blueprint(calls, fail_times=100))
    with caplog.at_level(logging.WARNING, logger="avtomatika.core"):
        job = h.run("flaky")
    assert job["status"] == "quarantined"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    for attempt, line in enumerate(warnings, 1):
        assert line.startswith(f"job {job['id']}: the handler of state 'start' failed (attempt {attempt} of 4)")
        assert line.endswith(f"state 'start': handler raised ValueError: the database is on fire ({attempt})")
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].startswith(f"job {job['id']} quarantined at state 'start' after 4 attempts; last traceback:")
    assert "ValueError: the database is on fire (4)" in errors[0]
    view = job_view(job)
    assert "avtomatika.core" in view["traceback_hint"] and "Traceback" not in view["error_message"]


def test_a_handler_error_message_names_its_state_once():
    bp = StateMachineBlueprint("strategy")

    @bp.handler_for("start", is_start=True)
    def start(actions):
        actions.dispatch_task("t", {}, {"success": "finished"}, dispatch_strategy="bogus")

    job = Harness(bp, JOB_MAX_RETRIES=0).run("strategy")
    assert job["error_message"].count("state 'start'") == 1, job["error_message"]


def test_entering_failed_always_says_why():
    bp = StateMachineBlueprint("giveup")

    @bp.handler_for("start", is_start=True)
    def start(actions):
        actions.transition_to("failed")

    job = Harness(bp).run("giveup")
    assert job["status"] == "failed"
    assert job["error_message"] == "state 'start': transition_to('failed'); the job entered state 'failed'"
