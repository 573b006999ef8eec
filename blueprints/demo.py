"""The demo application: `avtomatika demo` runs it on the embedded default.

It is also a normal application module: `AVTOMATIKA_APP=blueprints.demo:engine` loads it in every role.
"""

from avtomatika import OrchestratorEngine, StateMachineBlueprint
from avtomatika.config import Config
from avtomatika.storage import MemoryStorage

from .conditional import conditional
from .data_store import store_blueprint
from .linear import linear

DEMO_TOKEN = "demo-client-token"

video = StateMachineBlueprint("video_pipeline", api_version="v1", api_endpoint="jobs/video")


@video.handler_for("received", is_start=True)
def received(initial_data, state_history, actions):
    state_history["steps"] = ["received"]
    if initial_data.get("duration", 0) <= 0:
        actions.transition_to("rejected")
    else:
        actions.transition_to("transcode")


@video.handler_for("transcode")
def transcode(initial_data, state_history, actions):
    """Delegates the heavy work to an HTTP worker (blueprints/demo_worker.py serves `transcode_video`)."""
    state_history["steps"].append("transcode")
    actions.dispatch_task(
        task_type="transcode_video",
        params={"name": initial_data["name"], "duration": initial_data["duration"]},
        transitions={"success": "review", "failure": "rejected"},
        timeout_seconds=60,
    )


@video.handler_for("review").when("context.initial_data.duration > 600")
def long_review(state_history, actions):
    state_history["steps"].append("review:long")
    actions.transition_to("publish")


@video.handler_for("review")
def quick_review(state_history, actions):
    state_history["steps"].append("review:quick")
    actions.transition_to("publish")


@video.handler_for("publish", is_end=True)
def publish(output_path, state_history):
    state_history["steps"].append("publish")
    state_history["published_url"] = "https://cdn.example/" + output_path.rsplit("/", 1)[-1]


@video.handler_for("rejected", is_end=True)
def rejected(state_history):
    state_history["steps"].append("rejected")


config = Config()
if config.CLIENT_TOKEN == "secure-client-token" and config.AVTOMATIKA_ENV != "production":
    config.CLIENT_TOKEN = DEMO_TOKEN
engine = OrchestratorEngine(MemoryStorage(), config)
for blueprint in (video, linear, conditional, store_blueprint):
    engine.register_blueprint(blueprint)
