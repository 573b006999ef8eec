"""Fan-out / fan-in: make a thumbnail of every frame in parallel, then collect them once.

`dispatch_parallel` dispatches each task as a branch of its own (each retried like a single task); when every
branch has a final outcome, the aggregator of `aggregate_into` runs once with all of them, failures included,
in `aggregation_results` (branch id -> `{status, data, error, task_type}`) and decides what happens next.
"""

import os
import time

from avtomatika import StateMachineBlueprint

thumbnails = StateMachineBlueprint("thumbnails", api_version="v1", api_endpoint="jobs/thumbnails")


@thumbnails.handler_for("start", is_start=True)
def fan_out(initial_data, actions):
    actions.dispatch_parallel(
        tasks=[
            {"task_type": initial_data.get("task_type", "thumbnail"), "params": {"frame": frame}}
            for frame in range(initial_data.get("frames", 3))
        ],
        aggregate_into="collect",
    )


@thumbnails.aggregator_for("collect")
def collect(aggregation_results, initial_data, state_history, actions):
    if initial_data.get("log"):  # tests count the aggregator's runs (and may kill it while it sleeps)
        with open(initial_data["log"], "a") as handle:
            handle.write(f"{os.getpid()}\n")
        time.sleep(initial_data.get("sleep", 0))
    made = [r["data"]["path"] for r in aggregation_results.values() if r["status"] == "success"]
    state_history["thumbnails"] = sorted(made)
    state_history["failed_branches"] = len(aggregation_results) - len(made)
    actions.transition_to("finished" if made else "failed")
