"""What a handler sees (`JobContext`) and how it says what happens next (`ActionFactory`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from .errors import ActionError, HandlerError

ALL_ACTIONS = ("transition", "dispatch_task", "dispatch_parallel", "await_human_approval", "run_blueprint")


def _check_transitions(transitions: Any, method: str) -> dict[str, str]:
    if not isinstance(transitions, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in transitions.items()
    ):
        raise HandlerError(f"{method}: transitions must be a dict of status -> state names, got {transitions!r}")
    return dict(transitions)


class ActionFactory:
    """Collects the single action a handler takes; a second action raises `RuntimeError`."""

    def __init__(self, job_id: str = "") -> None:
        self.job_id = job_id
        self.action: dict[str, Any] | None = None

    def _set(self, action: dict[str, Any]) -> None:
        if self.action is not None:
            raise ActionError(
                f"only one action per handler call: {self.action['kind']} was already set, "
                f"{action['kind']} is a second one",
                job_id=self.job_id,
            )
        self.action = action

    def transition_to(self, state: str) -> None:
        """Move the job to `state`."""
        if not isinstance(state, str) or not state:
            raise HandlerError(f"transition_to: state must be a non-empty string, got {state!r}")
        self._set({"kind": "transition", "state": state})

    def dispatch_task(
        self,
        task_type: str,
        params: dict[str, Any] | None = None,
        transitions: dict[str, str] | None = None,
        dispatch_strategy: str = "default",
        resource_requirements: dict[str, Any] | None = None,
        timeout_seconds: float | None = None,
        max_cost: float | None = None,
        priority: float = 0.0,
    ) -> None:
        """Hand a task to a worker; its result status picks the next state from `transitions`."""
        if not isinstance(task_type, str) or not task_type:
            raise HandlerError(f"dispatch_task: task_type must be a non-empty string, got {task_type!r}")
        self._set(
            {
                "kind": "dispatch_task",
                "task_type": task_type,
                "params": dict(params or {}),
                "transitions": _check_transitions(transitions or {}, "dispatch_task"),
                "dispatch_strategy": dispatch_strategy,
                "resource_requirements": resource_requirements,
                "timeout_seconds": timeout_seconds,
                "max_cost": max_cost,
                "priority": float(priority),
            }
        )

    def dispatch_parallel(self, tasks: list[dict[str, Any]], aggregate_into: str) -> None:
        """Fan out `tasks` (each with `task_type` or `type`); the aggregator of `aggregate_into` fans in."""
        if not isinstance(tasks, list) or not tasks:
            raise HandlerError("dispatch_parallel: tasks must be a non-empty list")
        branches = []
        for task in tasks:
            if not isinstance(task, dict):
                raise HandlerError(f"dispatch_parallel: each task must be a dict, got {task!r}")
            task_type = task.get("task_type", task.get("type"))
            if not isinstance(task_type, str) or not task_type:
                raise HandlerError(f"dispatch_parallel: a task has no task_type: {task!r}")
            branches.append({**{k: v for k, v in task.items() if k != "type"}, "task_type": task_type})
        self._set({"kind": "dispatch_parallel", "tasks": branches, "aggregate_into": aggregate_into})

    def await_human_approval(
        self,
        integration: str,
        message: str,
        transitions: dict[str, str],
        timeout_seconds: float | None = None,
    ) -> None:
        """Pause until a person decides; the decision key picks the next state."""
        self._set(
            {
                "kind": "await_human_approval",
                "integration": integration,
                "message": message,
                "transitions": _check_transitions(transitions, "await_human_approval"),
                "timeout_seconds": timeout_seconds,
            }
        )

    def run_blueprint(self, blueprint_name: str, initial_data: dict[str, Any], transitions: dict[str, str]) -> None:
        """Start a child job of `blueprint_name`; its outcome picks `success` or `failure`."""
        self._set(
            {
                "kind": "run_blueprint",
                "blueprint_name": blueprint_name,
                "initial_data": dict(initial_data or {}),
                "transitions": _check_transitions(transitions, "run_blueprint"),
            }
        )


@dataclass
class ClientConfig:
    """The API client that owns a job, as handlers see it (never its token)."""

    client_id: str
    plan: str = "default"
    params: dict[str, Any] = field(default_factory=dict)
    is_admin: bool = False


@dataclass
class JobContext:
    """Everything about the running step; handlers may ask for it as `context`."""

    job_id: str
    current_state: str
    initial_data: dict[str, Any]
    state_history: dict[str, Any]
    actions: ActionFactory
    client: ClientConfig
    data_stores: SimpleNamespace = field(default_factory=SimpleNamespace)
    aggregation_results: dict[str, Any] | None = None
    tracing_context: dict[str, Any] = field(default_factory=dict)
