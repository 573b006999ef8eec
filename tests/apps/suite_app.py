"""The application module the integration tests load in every role (API, Celery workers, embedded).

`AVTOMATIKA_APP=tests.apps.suite_app:engine`; with REDIS_URL set the engine runs in Redis mode.
"""

from __future__ import annotations

import os
import time

from avtomatika import OrchestratorEngine, StateMachineBlueprint
from avtomatika.config import Config
from avtomatika.storage import MemoryStorage
from blueprints.conditional import conditional
from blueprints.data_store import store_blueprint
from blueprints.linear import linear

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


looping = StateMachineBlueprint("looping", api_version="v1", api_endpoint="jobs/looping")


@looping.handler_for("ping", is_start=True)
def ping(actions):
    actions.transition_to("pong")


@looping.handler_for("pong")
def pong(actions):
    actions.transition_to("ping")


ALL = (linear, conditional, store_blueprint, flaky, no_action, slow, looping)


def build_engine(storage=None, config=None) -> OrchestratorEngine:
    """An engine with every test blueprint; clients A and B plus an admin come from CLIENTS_CONFIG_PATH."""
    config = config or Config()
    config.JOB_RETRY_BASE_SECONDS = 0.05
    config.MAX_TRANSITIONS_PER_JOB = 50
    built = OrchestratorEngine(storage or MemoryStorage(), config)
    for blueprint in ALL:
        built.register_blueprint(blueprint)
    return built


engine = build_engine()
