"""The test engine plus `audited`, a job that touches every kind of history event: a fan-out of native tasks,
the fan-in, a human approval, a child job and the end.

`AVTOMATIKA_APP=tests.apps.history_app:engine` (with `HISTORY_DATABASE_URI` set) in every role.
"""

from __future__ import annotations

from avtomatika import StateMachineBlueprint
from tests.apps.suite_app import build_engine as build_suite_engine

audited = StateMachineBlueprint("audited", api_version="v1", api_endpoint="jobs/audited")


@audited.handler_for("start", is_start=True)
def fan_out(initial_data, actions):
    actions.dispatch_parallel([{"type": "double", "params": {"value": v}} for v in initial_data["values"]], "sum_up")


@audited.aggregator_for("sum_up")
def sum_up(aggregation_results, state_history, actions):
    state_history["sum"] = sum(r["data"]["doubled"] for r in aggregation_results.values())
    actions.await_human_approval("log", "Publish the sum?", {"approve": "child", "reject": "failed"})


@audited.handler_for("child")
def start_child(state_history, actions):
    actions.run_blueprint("linear", {"value": state_history["sum"]}, {"success": "finished", "failure": "failed"})


def build_engine(storage=None, config=None):
    """The suite's engine with `audited` registered."""
    built = build_suite_engine(storage, config)
    built.register_blueprint(audited)
    return built


engine = build_engine()
