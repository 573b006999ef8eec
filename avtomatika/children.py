"""Child jobs (`run_blueprint`): the pure parts: building the child, and what its end means to the parent.

The core creates the child atomically with the parent's commit (the `CreateJob` operation) and resumes the
parent when the child's commit makes it terminal; the sweep resumes parents whose resume was lost in a crash.
"""

from __future__ import annotations

from typing import Any

from .blueprint import StateMachineBlueprint
from .errors import HandlerError
from .job import Job, JobStatus, new_job
from .waits import ChildWait

MAX_DEPTH = 32


def child_job(parent: Job, blueprint: StateMachineBlueprint, initial_data: dict[str, Any], now: float) -> Job:
    """A new job of `blueprint` at its own start state, owned by the parent's client."""
    depth = int(parent.get("depth", 0)) + 1
    if depth > MAX_DEPTH:
        raise HandlerError(f"run_blueprint: child jobs nest deeper than {MAX_DEPTH} levels")
    child = new_job(blueprint.name, blueprint.start_state, initial_data, parent["client_id"], now=now)
    if parent.get("tracing_context"):
        child["tracing_context"] = parent["tracing_context"]  # a child job continues its parent's trace
    child["client"] = parent.get("client")
    child["parent_id"] = parent["id"]
    child["depth"] = depth
    return child


def child_wait(child: Job, transitions: dict[str, str]) -> ChildWait:
    """What the parent waits for."""
    return {"kind": "child", "child_id": child["id"], "blueprint": child["blueprint_name"], "transitions": transitions}


def child_result(child: Job | None, child_id: str) -> dict[str, Any]:
    """`state_history["sub_job_results"][child_id]` of the parent (SPEC §4); a vanished child counts as failed."""
    if child is None:
        return {"status": "failed", "final_state": None, "state_history": {}, "error_message": "the child job vanished"}
    return {
        "status": child["status"],
        "final_state": child["current_state"],
        "state_history": child["state_history"],
        "error_message": child.get("error_message"),
    }


def outcome_key(result: dict[str, Any]) -> str:
    """`success` when the child finished, else `failure` (failed, quarantined, cancelled, timed out)."""
    return "success" if result["status"] == JobStatus.FINISHED.value else "failure"
