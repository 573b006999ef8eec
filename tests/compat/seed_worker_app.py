# An app written the way the seed page (avtomatika 1.0b4) shows: the Quick Start's configuration and entry
# point, with the page's `dispatch_task` example as its middle step. A clients.toml beside it holds the same
# client token, as 1.0b4 needed.
import asyncio
from avtomatika import OrchestratorEngine, StateMachineBlueprint
from avtomatika.context import ActionFactory
from avtomatika.storage import MemoryStorage
from avtomatika.config import Config

storage = MemoryStorage()
config = Config()  # Loads configuration from environment variables

config.CLIENT_TOKEN = "my-secret-client-token"
config.GLOBAL_WORKER_TOKEN = "my-secret-worker-token"

my_blueprint = StateMachineBlueprint(name="my_first_blueprint", api_version="v1", api_endpoint="/jobs/my_flow")


@my_blueprint.handler_for("start", is_start=True)
async def start_handler(job_id: str, initial_data: dict, actions: ActionFactory):
    print(f"Job {job_id} | Start: {initial_data}")
    actions.transition_to("transcode_video")


@my_blueprint.handler_for("transcode_video")
async def transcode_handler(initial_data, actions):
    actions.dispatch_task(
        task_type="video_transcoding",
        params={"input_path": initial_data.get("path")},
        # Define the next step based on the worker's response status
        transitions={
            "success": "publish_video",
            "failure": "transcoding_failed",
            "needs_review": "manual_review",  # Example of a custom status
        },
    )


@my_blueprint.handler_for("publish_video", is_end=True)
async def publish_handler(output_path, duration):
    print(f"Published {output_path} ({duration} s)")


@my_blueprint.handler_for("transcoding_failed", is_end=True)
async def failed_handler(state_history):
    print("Transcoding failed")


@my_blueprint.handler_for("manual_review", is_end=True)
async def review_handler(state_history):
    print("Needs review")


engine = OrchestratorEngine(storage, config)
engine.register_blueprint(my_blueprint)


async def main():
    await engine.start()
    try:
        await asyncio.Event().wait()
    finally:
        await engine.stop()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("\nStopping server.")
