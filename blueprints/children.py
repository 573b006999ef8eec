"""Child jobs: a release runs its build as a child job, and the build runs the test suite as a grandchild.

`run_blueprint` starts the child at its own start state, with the parent's client; the parent waits in
`waiting_for_sub_job` and resumes at `transitions["success"]` when the child finished, else at
`transitions["failure"]`, with the child's outcome in `state_history["sub_job_results"][child_id]`.
"""

from avtomatika import StateMachineBlueprint

release = StateMachineBlueprint("release", api_version="v1", api_endpoint="jobs/release")


@release.handler_for("start", is_start=True)
def build_it(initial_data, actions):
    actions.run_blueprint("build", dict(initial_data), {"success": "publish", "failure": "rolled_back"})


@release.handler_for("publish", is_end=True)
def publish(state_history):
    state_history["published"] = True


@release.handler_for("rolled_back", is_end=True)
def roll_back(state_history):
    state_history["published"] = False


build = StateMachineBlueprint("build")  # no api_endpoint: it runs only as a child


@build.handler_for("start", is_start=True)
def test_it(initial_data, actions):
    actions.run_blueprint("test_suite", dict(initial_data), {"success": "finished", "failure": "failed"})


test_suite = StateMachineBlueprint("test_suite")


@test_suite.handler_for("start", is_start=True)
def run_tests(initial_data, state_history, actions):
    outcome = initial_data.get("outcome", "green")
    if outcome == "crash":  # retried, then quarantined
        raise RuntimeError("the test runner crashed")
    if outcome == "red":
        state_history["tests"] = "red"
        actions.transition_to("failed")
    elif outcome in ("review", "slow_review"):  # waits for a person (cancel or time it out)
        timeout = 1 if outcome == "slow_review" else None
        actions.await_human_approval("log", "flaky tests: rerun?", {"ok": "finished"}, timeout_seconds=timeout)
    else:
        state_history["tests"] = "green"
        actions.transition_to("finished")
