"""The application module the integration tests load in every role (API, Celery workers, embedded).

`AVTOMATIKA_APP=tests.apps.suite_app:engine`; with REDIS_URL set the engine runs in Redis mode.
"""

from __future__ import annotations

import os
import time

from avtomatika import OrchestratorEngine, StateMachineBlueprint
from avtomatika.config import Config
from avtomatika.storage import MemoryStorage
from avtomatika.stream import JOB_ENDS, STATE_FINISHED, TASK_FINISHED, TASK_RETRY, Event
from blueprints.approval import moderation, strict
from blueprints.children import build, release, test_suite
from blueprints.conditional import conditional
from blueprints.data_store import store_blueprint
from blueprints.fanout import thumbnails
from blueprints.linear import linear
from tests.apps.operators import operators

CLIENT_A = "client-a-token"
CLIENT_B = "client-b-token"
ADMIN = "admin-token"

flaky = StateMachineBlueprint("flaky", api_version="v1", api_endpoint="jobs/flaky")


@flaky.handler_for("start", is_start=True)
def always_fails(actions):
    raise ValueError("the database is on fire")


no_action = StateMachineBlueprint("no_action", api_version="v1", api_endpoint="jobs/no_action")


@no_action.handler_for("start", is_start=True)
def forgets(state_history):
    state_history["note"] = "no action set"


slow = StateMachineBlueprint("slow", api_version="v1", api_endpoint="jobs/slow")


@slow.handler_for("start", is_start=True)
def begin(state_history, actions):
    state_history["visits"] = ["start"]
    actions.transition_to("work")


@slow.handler_for("work")
def work(state_history, actions, initial_data):
    """Sleeps so a test can kill the Celery worker in the middle; logs each run to a file."""
    log = initial_data.get("log")
    if log:
        with open(log, "a") as handle:
            handle.write(f"{os.getpid()}\n")
    time.sleep(initial_data.get("sleep", 0))
    state_history["visits"].append("work")
    actions.transition_to("finish")


@slow.handler_for("finish", is_end=True)
def finish(state_history):
    state_history["visits"].append("finish")


poison = StateMachineBlueprint("poison", api_version="v1", api_endpoint="jobs/poison")


@poison.handler_for("start", is_start=True)
def kills_its_worker(initial_data):
    """A poison step: it ends its own process (only where AVTOMATIKA_TEST_ALLOW_EXIT=1, i.e. a Celery
    worker started by the poison-step test; anywhere else it raises)."""
    with open(initial_data["log"], "a") as handle:
        handle.write(f"{os.getpid()}\n")
    if os.environ.get("AVTOMATIKA_TEST_ALLOW_EXIT") != "1":
        raise RuntimeError("this step would have ended its process")
    os._exit(1)


fixable = StateMachineBlueprint("fixable", api_version="v1", api_endpoint="jobs/fixable")


@fixable.handler_for("start", is_start=True)
def needs_a_fix(initial_data, state_history, actions):
    """Fails (and is quarantined) until the file `initial_data["fix"]` exists: an operator fixes, then retries."""
    if not os.path.exists(initial_data["fix"]):
        raise RuntimeError("the fix is not deployed yet")
    state_history["fixed"] = True
    actions.transition_to("finished")


looping = StateMachineBlueprint("looping", api_version="v1", api_endpoint="jobs/looping")


@looping.handler_for("ping", is_start=True)
def ping(actions):
    actions.transition_to("pong")


@looping.handler_for("pong")
def pong(actions):
    actions.transition_to("ping")


# -- worker tasks ------------------------------------------------------------------------------------------

tasks = StateMachineBlueprint("tasks", api_version="v1", api_endpoint="jobs/tasks")


@tasks.handler_for("start", is_start=True)
def dispatch(initial_data, actions):
    actions.dispatch_task(
        task_type=initial_data.get("task_type", "echo"),
        params={"text": initial_data.get("text", "hi")},
        transitions={
            "success": "done",
            "failure": "handle_failure",
            "needs_review": "review",
        },
        priority=initial_data.get("priority", 0),
        resource_requirements=initial_data.get("requirements"),
        dispatch_strategy=initial_data.get("strategy", "default"),
        max_cost=initial_data.get("max_cost"),
        timeout_seconds=initial_data.get("timeout"),
    )


@tasks.handler_for("handle_failure")
def handle_failure(state_history, actions):
    state_history["handled"] = True
    actions.transition_to("failed")


@tasks.handler_for("review")
def review(actions):
    actions.transition_to("done")


@tasks.handler_for("done", is_end=True)
def tasks_done(state_history):
    state_history["finished_by"] = "done"


outcomes = StateMachineBlueprint("outcomes", api_version="v1", api_endpoint="jobs/outcomes")


@outcomes.handler_for("start", is_start=True)
def dispatch_with_transitions(initial_data, actions):
    """The transitions come from the client, so one blueprint covers every row of the outcome table."""
    actions.dispatch_task(initial_data["task_type"], {}, initial_data["transitions"])


@outcomes.handler_for("after_cancel")
def after_cancel(state_history, actions):
    state_history["cancel_handled"] = True
    actions.transition_to("done")


@outcomes.handler_for("done", is_end=True)
def outcomes_done(state_history):
    state_history["finished_by"] = "done"


no_failure = StateMachineBlueprint("no_failure", api_version="v1", api_endpoint="jobs/no_failure")


@no_failure.handler_for("start", is_start=True)
def dispatch_plain(initial_data, actions):
    actions.dispatch_task("echo", {"n": 1}, {"success": "finished"}, timeout_seconds=initial_data.get("timeout"))


native = StateMachineBlueprint("native", api_version="v1", api_endpoint="jobs/native")


@native.handler_for("start", is_start=True)
def dispatch_native(initial_data, actions):
    actions.dispatch_task(
        "double", {"value": initial_data.get("value", 1)}, {"success": "finished", "failure": "failed"}
    )


crash = StateMachineBlueprint("crash", api_version="v1", api_endpoint="jobs/crash")


@crash.handler_for("start", is_start=True)
def dispatch_crash(initial_data, actions):
    actions.dispatch_task("crash-echo", {"log": initial_data["log"]}, {"success": "finished"}, timeout_seconds=120)


native_fan = StateMachineBlueprint("native_fan", api_version="v1", api_endpoint="jobs/native_fan")


@native_fan.handler_for("start", is_start=True)
def fan_out_natively(initial_data, actions):
    """Branches of native `double` (one per value) and of native `edgy` (one per params in `edgy`)."""
    doubles = [{"type": "double", "params": {"value": v}} for v in initial_data["values"]]
    actions.dispatch_parallel(doubles + [{"type": "edgy", "params": p} for p in initial_data.get("edgy", [])], "sum_up")


@native_fan.aggregator_for("sum_up")
def sum_up(aggregation_results, state_history, actions):
    outcomes = aggregation_results.values()
    state_history["doubled"] = sorted(r["data"]["doubled"] for r in outcomes if "doubled" in r["data"])
    state_history["edgy"] = sorted(r["data"]["attempt"] for r in outcomes if r["task_type"] == "edgy")
    state_history["errors"] = sorted(r["error"]["code"] for r in outcomes if r["status"] == "failure")
    actions.transition_to("finished")


sleepy_native = StateMachineBlueprint("sleepy_native", api_version="v1", api_endpoint="jobs/sleepy_native")


@sleepy_native.handler_for("start", is_start=True)
def dispatch_sleepy(initial_data, actions):
    actions.dispatch_task("sleepy", dict(initial_data), {"success": "finished"}, timeout_seconds=60)


def sleepy(params, task_id):
    """A long native task that logs each run (tests count concurrent runs)."""
    with open(params["log"], "a") as handle:
        handle.write(f"{task_id} {time.time()}\n")
    time.sleep(params["seconds"])
    return {"slept": params["seconds"]}


native_edges = StateMachineBlueprint("native_edges", api_version="v1", api_endpoint="jobs/native_edges")


@native_edges.handler_for("start", is_start=True)
def dispatch_edgy(initial_data, actions):
    actions.dispatch_task(
        "edgy",
        dict(initial_data),
        {"success": "finished", "failure": "handled", "needs_review": "reviewed"},
        timeout_seconds=60,
    )


@native_edges.handler_for("handled")
def edgy_handled(state_history, actions):
    state_history["handled"] = True
    actions.transition_to("finished")


@native_edges.handler_for("reviewed")
def edgy_reviewed(state_history, actions):
    state_history["reviewed"] = True
    actions.transition_to("finished")


async def edgy(params, job_id, task_id, attempt):
    """A native task type (async, with every optional argument) whose outcome the test chooses by `mode`."""
    from avtomatika.worker import PermanentError, TaskFailure, TaskResult, TransientError

    if params.get("log"):
        with open(params["log"], "a") as handle:
            handle.write(f"{task_id} {attempt}\n")
    mode = params["mode"]
    if mode == "ids":
        return {"job_id": job_id, "task_id": task_id, "attempt": attempt}
    if mode == "custom":
        return TaskResult("needs_review", {"score": 0.4})
    if mode == "plain_failure":
        raise TaskFailure("not good enough", data={"score": 0.1})
    if mode == "permanent":
        raise PermanentError("corrupt input")
    if mode == "transient":
        raise TransientError(f"busy on attempt {attempt}")
    if mode == "crash_once" and attempt == 1:
        raise RuntimeError("an unexpected bug")
    if mode == "sleep":
        import asyncio

        await asyncio.sleep(params["seconds"])
    return {"attempt": attempt}


def double(params, attempt):
    """A native task type: runs as a Celery task, no HTTP worker involved."""
    if params["value"] < 0:
        from avtomatika.worker.errors import InvalidInputError

        raise InvalidInputError("value must not be negative")
    return {"doubled": params["value"] * 2, "attempt": attempt}


ALL = (
    linear,
    conditional,
    store_blueprint,
    flaky,
    no_action,
    slow,
    poison,
    looping,
    tasks,
    outcomes,
    no_failure,
    native,
    crash,
    operators,
    moderation,
    strict,
    fixable,
    release,
    build,
    test_suite,
    thumbnails,
    native_fan,
    sleepy_native,
    native_edges,
)


class CommitProbe:
    """Test-only event-stream subscriber (enabled by env vars in worker processes): logs every committed state
    and job end to `AVTOMATIKA_TEST_COMMIT_LOG`, one line per event from any process, so crash tests count
    what was applied; with `AVTOMATIKA_TEST_HANG_AFTER=<state>` it blocks after that state's commit (before
    the Celery ack) so a test can kill -9 the worker there; with `AVTOMATIKA_TEST_HANG_AFTER=task_retry` it
    blocks after the commit that retries a task attempt (before anything that follows that commit)."""

    def __init__(self, log: str, hang_after: str) -> None:
        self.log = log
        self.hang_after = hang_after

    def _write(self, line: str) -> None:
        with open(self.log, "a") as handle:
            handle.write(line + "\n")

    def handle(self, event: Event) -> None:
        job_id = getattr(event, "job_id", None)
        if event.kind == TASK_RETRY and self.hang_after == TASK_RETRY:
            self._write(f"{job_id} hung {TASK_RETRY} {os.getpid()}")
            time.sleep(3600)
        elif event.kind == STATE_FINISHED:
            self._write(f"{job_id} state {event.state} {os.getpid()}")
            if event.state == self.hang_after:
                self._write(f"{job_id} hung {event.state} {os.getpid()}")
                time.sleep(3600)
        elif event.kind in JOB_ENDS.values():
            self._write(f"{job_id} ended {event.status} {os.getpid()}")  # type: ignore[union-attr]


def build_engine(storage=None, config=None) -> OrchestratorEngine:
    """An engine with every test blueprint; clients A and B plus an admin come from CLIENTS_CONFIG_PATH."""
    config = config or Config()
    config.JOB_RETRY_BASE_SECONDS = 0.05
    if "TASK_RETRY_BASE_SECONDS" not in os.environ:  # tests of the real backoff set it
        config.TASK_RETRY_BASE_SECONDS = 0.05
    config.MAX_TRANSITIONS_PER_JOB = 50
    built = OrchestratorEngine(storage or MemoryStorage(), config)
    for blueprint in ALL:
        built.register_blueprint(blueprint)
    built.task_type("double")(double)
    built.task_type("sleepy")(sleepy)
    built.task_type("edgy")(edgy)
    if os.environ.get("AVTOMATIKA_TEST_COMMIT_LOG"):
        hang_after = os.environ.get("AVTOMATIKA_TEST_HANG_AFTER", "")
        retries = [TASK_FINISHED, TASK_RETRY] if hang_after == TASK_RETRY else []  # task events need both
        built.stream.subscribe(
            CommitProbe(os.environ["AVTOMATIKA_TEST_COMMIT_LOG"], hang_after),
            kinds=[STATE_FINISHED, *JOB_ENDS.values(), *retries],
        )
    return built


engine = build_engine()
