"""Small application modules for `avtomatika check` and `run`: one with mistakes, one that is a worker."""

from __future__ import annotations

from avtomatika import OrchestratorEngine, StateMachineBlueprint
from avtomatika.config import Config
from avtomatika.storage import MemoryStorage
from avtomatika.worker import Worker

warned = StateMachineBlueprint("warned", api_version="v1", api_endpoint="jobs/warned")


@warned.handler_for("start", is_start=True)
def start(actions):
    actions.dispatch_task("resize", {}, transitions={"failure": "failed"})


@warned.handler_for("orphan", is_end=True)
def orphan(state_history):
    state_history["never"] = True


engine = OrchestratorEngine(MemoryStorage(), Config({}))
engine.register_blueprint(warned)

a_worker = Worker("not-an-engine", "http://127.0.0.1:1", token="t")


@a_worker.task("ping")
def ping(params: dict) -> dict:
    return {}
