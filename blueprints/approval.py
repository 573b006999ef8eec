"""Human approval: a moderator approves or rejects a video before it is published.

The job waits in `waiting_for_human` until a decision is posted to
`POST /_public/webhooks/approval/{job_id}` (by the owner, or with the job's approval token), or until
`timeout_seconds` pass, which takes the `timeout` decision.
"""

from avtomatika import StateMachineBlueprint

moderation = StateMachineBlueprint("moderation", api_version="v1", api_endpoint="jobs/moderation")


@moderation.handler_for("start", is_start=True)
def ask_a_moderator(initial_data, actions):
    actions.await_human_approval(
        integration="log",
        message=f"Publish {initial_data.get('title', 'this video')}?",
        transitions={"approve": "publish", "reject": "rejected", "timeout": "rejected"},
        timeout_seconds=initial_data.get("timeout_seconds"),
    )


@moderation.handler_for("publish", is_end=True)
def publish(state_history):
    state_history["published"] = True


@moderation.handler_for("rejected", is_end=True)
def rejected(state_history):
    state_history["published"] = False


strict = StateMachineBlueprint("strict_moderation", api_version="v1", api_endpoint="jobs/strict_moderation")


@strict.handler_for("start", is_start=True)
def ask_without_a_timeout_decision(initial_data, actions):
    # No "timeout" key: when the time is up the job fails.
    actions.await_human_approval(
        integration="log",
        message="Approve?",
        transitions={"approve": "finished"},
        timeout_seconds=initial_data.get("timeout_seconds"),
    )
