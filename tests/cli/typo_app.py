"""A blueprint whose default handler's state name has a typo: `check` has only a conditional handler."""

from __future__ import annotations

from avtomatika import OrchestratorEngine, StateMachineBlueprint
from avtomatika.config import Config
from avtomatika.storage import MemoryStorage

typo = StateMachineBlueprint("typo", api_version="v1", api_endpoint="jobs/typo")


@typo.handler_for("start", is_start=True)
def start(actions):
    actions.transition_to("check")


@typo.handler_for("check").when("context.initial_data.kind == 'video'")
def video(actions):
    actions.transition_to("finished")


@typo.handler_for("chek")
def default(actions):
    actions.transition_to("finished")


engine = OrchestratorEngine(MemoryStorage(), Config({}))
engine.register_blueprint(typo)
