"""A five-state linear pipeline: the shape of the speed benchmark's first scenario."""

from avtomatika import StateMachineBlueprint

linear = StateMachineBlueprint("linear", api_version="v1", api_endpoint="jobs/linear")


@linear.handler_for("start", is_start=True)
def start(actions, state_history):
    state_history["visited"] = ["start"]
    actions.transition_to("prepare")


@linear.handler_for("prepare")
def prepare(actions, state_history):
    state_history["visited"].append("prepare")
    actions.transition_to("process")


@linear.handler_for("process")
async def process(actions, state_history, initial_data):
    state_history["visited"].append("process")
    state_history["doubled"] = initial_data.get("value", 0) * 2
    actions.transition_to("publish")


@linear.handler_for("publish")
def publish(actions, state_history):
    state_history["visited"].append("publish")
    actions.transition_to("done")


@linear.handler_for("done", is_end=True)
def done(state_history):
    state_history["visited"].append("done")
