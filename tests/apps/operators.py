"""A blueprint that evaluates every `.when()` operator and value type, in both declaration orders.

Each state `c<i>` records whether its condition held (`results[i]`) and moves on; odd states declare the
default handler before the conditional one, even states after it.
"""

from __future__ import annotations

from avtomatika import StateMachineBlueprint

CONDITIONS = [
    "context.initial_data.name == 'alpha'",
    "context.initial_data.count != 3",
    "context.initial_data.ratio > 0.5",
    "context.initial_data.count < 10",
    "context.initial_data.ratio >= 1.5",
    "context.initial_data.count <= -2",
    "context.initial_data.flag == True",
    "context.initial_data.flag != False",
    "context.initial_data.note == None",
    'context.state_history.seen == "yes"',
    "context.initial_data.code == '5'",
    "context.initial_data.missing == 1",
]

operators = StateMachineBlueprint("operators", api_version="v1", api_endpoint="jobs/operators")


@operators.handler_for("start", is_start=True)
def start(initial_data, state_history, actions):
    state_history["results"] = []
    state_history["seen"] = initial_data.get("seen")
    actions.transition_to("c0")


def _add_state(index: int, condition: str) -> None:
    state = f"c{index}"
    following = f"c{index + 1}" if index + 1 < len(CONDITIONS) else "finished"

    def matched(state_history, actions):
        state_history["results"].append(True)
        actions.transition_to(following)

    def unmatched(state_history, actions):
        state_history["results"].append(False)
        actions.transition_to(following)

    if index % 2:
        operators.handler_for(state)(unmatched)
        operators.handler_for(state).when(condition)(matched)
    else:
        operators.handler_for(state).when(condition)(matched)
        operators.handler_for(state)(unmatched)


for _index, _condition in enumerate(CONDITIONS):
    _add_state(_index, _condition)
