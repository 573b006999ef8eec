"""Conditional routing with `.when()`: the first matching condition wins, else the default handler."""

from avtomatika import StateMachineBlueprint

conditional = StateMachineBlueprint("conditional", api_version="v1", api_endpoint="jobs/conditional")


@conditional.handler_for("start", is_start=True)
def start(actions, state_history):
    state_history["route"] = []
    actions.transition_to("decide")


# The default handler may be declared before the conditional ones: declaration order only matters
# among the conditions.
@conditional.handler_for("decide")
def normal(actions):
    actions.transition_to("normal")


@conditional.handler_for("decide").when("context.initial_data.type == 'urgent'")
def urgent(actions):
    actions.transition_to("urgent")


@conditional.handler_for("decide").when("context.initial_data.size >= 100")
def big(actions):
    actions.transition_to("big")


@conditional.handler_for("urgent")
def handle_urgent(actions, state_history):
    state_history["route"].append("urgent")
    actions.transition_to("finished")


@conditional.handler_for("big")
def handle_big(actions, state_history):
    state_history["route"].append("big")
    actions.transition_to("finished")


@conditional.handler_for("normal")
def handle_normal(actions, state_history):
    state_history["route"].append("normal")
    actions.transition_to("finished")
