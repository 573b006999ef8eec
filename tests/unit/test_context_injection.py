"""`ActionFactory` (one action per call) and injection of handler arguments by parameter name (SPEC §1)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from avtomatika.context import ActionFactory, ClientConfig, JobContext
from avtomatika.errors import ActionError, HandlerError
from avtomatika.injection import CORE_NAMES, HandlerSpec, resolve

# -- ActionFactory ---------------------------------------------------------------------------------------

ONE_OF_EACH = {
    "transition": lambda a: a.transition_to("next"),
    "dispatch_task": lambda a: a.dispatch_task("resize", {"w": 1}, {"success": "done"}),
    "dispatch_parallel": lambda a: a.dispatch_parallel([{"task_type": "x"}], "gather"),
    "await_human_approval": lambda a: a.await_human_approval("log", "ok?", {"approve": "done"}),
    "run_blueprint": lambda a: a.run_blueprint("child", {"k": 1}, {"success": "done"}),
}


@pytest.mark.parametrize("first", list(ONE_OF_EACH))
@pytest.mark.parametrize("second", list(ONE_OF_EACH))
def test_second_action_raises_runtime_error(first, second):
    actions = ActionFactory("job-1")
    ONE_OF_EACH[first](actions)
    recorded = actions.action
    with pytest.raises(RuntimeError, match="only one action") as info:
        ONE_OF_EACH[second](actions)
    assert isinstance(info.value, ActionError)
    assert actions.action is recorded
    assert actions.action["kind"] == first


def test_no_action_by_default():
    assert ActionFactory().action is None


def test_transition_to_records_the_state():
    actions = ActionFactory()
    actions.transition_to("next")
    assert actions.action == {"kind": "transition", "state": "next"}


def test_dispatch_task_records_every_argument():
    actions = ActionFactory()
    params = {"w": 1}
    actions.dispatch_task(
        "resize",
        params,
        {"success": "done", "failure": "failed"},
        dispatch_strategy="cheapest",
        resource_requirements={"gpu_info": {"vram_gb": 8}},
        timeout_seconds=30,
        max_cost=0.5,
        priority=3,
    )
    assert actions.action == {
        "kind": "dispatch_task",
        "task_type": "resize",
        "params": {"w": 1},
        "transitions": {"success": "done", "failure": "failed"},
        "dispatch_strategy": "cheapest",
        "resource_requirements": {"gpu_info": {"vram_gb": 8}},
        "timeout_seconds": 30,
        "max_cost": 0.5,
        "priority": 3.0,
    }
    params["w"] = 2
    assert actions.action["params"] == {"w": 1}  # a copy, not the handler's live dict


def test_dispatch_task_defaults():
    actions = ActionFactory()
    actions.dispatch_task("resize")
    action = actions.action
    assert (action["params"], action["transitions"], action["dispatch_strategy"], action["priority"]) == (
        {},
        {},
        "default",
        0.0,
    )
    assert action["resource_requirements"] is None and action["timeout_seconds"] is None
    assert action["max_cost"] is None


@pytest.mark.parametrize("key", ["task_type", "type"])
def test_dispatch_parallel_accepts_task_type_or_type(key):
    actions = ActionFactory()
    actions.dispatch_parallel([{key: "a", "params": {"n": 1}, "priority": 2}, {"task_type": "b"}], "gather")
    assert actions.action == {
        "kind": "dispatch_parallel",
        "tasks": [{"task_type": "a", "params": {"n": 1}, "priority": 2}, {"task_type": "b"}],
        "aggregate_into": "gather",
    }


@pytest.mark.parametrize("tasks", [[], None, [{"params": {}}], [{"type": ""}], ["a"]])
def test_dispatch_parallel_rejects_bad_tasks(tasks):
    actions = ActionFactory()
    with pytest.raises(HandlerError, match="dispatch_parallel"):
        actions.dispatch_parallel(tasks, "gather")
    assert actions.action is None


def test_await_human_approval_records_its_action():
    actions = ActionFactory()
    actions.await_human_approval("webhook", "approve?", {"approve": "go", "reject": "stop"}, timeout_seconds=60)
    assert actions.action == {
        "kind": "await_human_approval",
        "integration": "webhook",
        "message": "approve?",
        "transitions": {"approve": "go", "reject": "stop"},
        "timeout_seconds": 60,
    }


def test_run_blueprint_records_its_action():
    actions = ActionFactory()
    actions.run_blueprint("child", {"k": 1}, {"success": "ok", "failure": "ko"})
    assert actions.action == {
        "kind": "run_blueprint",
        "blueprint_name": "child",
        "initial_data": {"k": 1},
        "transitions": {"success": "ok", "failure": "ko"},
    }


@pytest.mark.parametrize("transitions", [None, ["done"], {"success": 1}, {1: "done"}])
def test_transitions_must_be_a_dict_of_names(transitions):
    actions = ActionFactory()
    with pytest.raises(HandlerError, match="transitions"):
        actions.run_blueprint("child", {}, transitions)
    assert actions.action is None


@pytest.mark.parametrize("state", ["", None, 3])
def test_transition_to_needs_a_state_name(state):
    actions = ActionFactory()
    with pytest.raises(HandlerError):
        actions.transition_to(state)
    assert actions.action is None


# -- injection -------------------------------------------------------------------------------------------


def make_context(initial_data=None, state_history=None) -> JobContext:
    return JobContext(
        job_id="job-1",
        current_state="work",
        initial_data={"shared": "from-initial", "only_initial": 1} if initial_data is None else initial_data,
        state_history={"shared": "from-history", "only_history": 2} if state_history is None else state_history,
        actions=ActionFactory("job-1"),
        client=ClientConfig("c1", plan="pro", params={"tier": "gold"}),
        data_stores=SimpleNamespace(prices={"apple": 3}),
        aggregation_results={"t1": {"status": "success"}},
        tracing_context={"traceparent": "00-abc-def-01"},
    )


def test_every_core_name_is_injected():
    context = make_context()

    def handler(
        context,
        job_id,
        current_state,
        initial_data,
        state_history,
        actions,
        client,
        data_stores,
        aggregation_results,
        tracing_context,
    ):
        pass

    kwargs = HandlerSpec.inspect(handler).arguments(context)
    assert set(kwargs) == set(CORE_NAMES)
    assert kwargs["context"] is context
    for name in CORE_NAMES:
        if name != "context":
            assert kwargs[name] is getattr(context, name), name
    assert kwargs["job_id"] == "job-1" and kwargs["current_state"] == "work"
    assert kwargs["client"].params == {"tier": "gold"}
    assert kwargs["data_stores"].prices == {"apple": 3}


def test_core_names_win_over_data_keys():
    context = make_context(initial_data={"job_id": "spoofed"}, state_history={"actions": "spoofed"})
    kwargs = HandlerSpec.inspect(lambda job_id, actions: None).arguments(context)
    assert kwargs == {"job_id": "job-1", "actions": context.actions}


def test_state_history_wins_over_initial_data():
    kwargs = HandlerSpec.inspect(lambda shared, only_history, only_initial: None).arguments(make_context())
    assert kwargs == {"shared": "from-history", "only_history": 2, "only_initial": 1}


def test_falsy_values_are_still_found():
    context = make_context(initial_data={"zero": 0}, state_history={"empty": None})
    assert HandlerSpec.inspect(lambda zero=5, empty="x": None).arguments(context) == {"zero": 0, "empty": None}


def test_defaults_are_used_when_unresolvable():
    def handler(actions, retries=3, *, label="none"):
        return retries, label

    spec = HandlerSpec.inspect(handler)
    kwargs = spec.arguments(make_context())
    assert set(kwargs) == {"actions"}
    assert spec.func(**kwargs) == (3, "none")
    kwargs = spec.arguments(make_context(initial_data={"label": "L"}, state_history={"retries": 7}))
    assert spec.func(**kwargs) == (7, "L")


def test_keyword_only_parameters_are_injected():
    def handler(*, job_id, only_history):
        return job_id, only_history

    spec = HandlerSpec.inspect(handler)
    assert spec.func(**spec.arguments(make_context())) == ("job-1", 2)


def test_missing_parameter_without_default_names_it():
    def handler(actions, customer_id):
        pass

    spec = HandlerSpec.inspect(handler)
    with pytest.raises(HandlerError) as info:
        spec.arguments(make_context())
    assert "'customer_id'" in str(info.value)
    assert "handler" in str(info.value)
    assert info.value.context["parameter"] == "customer_id"


def test_resolve_order():
    context = make_context()
    assert resolve("context", context) == (True, context)
    assert resolve("shared", context) == (True, "from-history")
    assert resolve("only_initial", context) == (True, 1)
    assert resolve("absent", context) == (False, None)


def test_kwargs_handler_receives_only_its_named_parameters():
    spec = HandlerSpec.inspect(lambda actions, **rest: None)
    assert spec.accepts_kwargs
    assert set(spec.arguments(make_context())) == {"actions"}


def positional_only(actions, /):
    pass


@pytest.mark.parametrize("func", [lambda *args: None, positional_only])
def test_uninjectable_signatures_are_rejected_at_registration(func):
    with pytest.raises(HandlerError, match="cannot be injected by name"):
        HandlerSpec.inspect(func)


def test_non_callable_is_rejected():
    with pytest.raises(HandlerError, match="must be callable"):
        HandlerSpec.inspect("not a function")  # type: ignore[arg-type]


def test_sync_handler_runs_with_injected_arguments():
    def handler(actions, only_history, state_history):
        state_history["seen"] = only_history
        actions.transition_to("next")

    context = make_context()
    spec = HandlerSpec.inspect(handler)
    assert spec.is_async is False
    spec.func(**spec.arguments(context))
    assert context.actions.action == {"kind": "transition", "state": "next"}
    assert context.state_history["seen"] == 2


def test_async_handler_runs_with_injected_arguments():
    async def handler(actions, only_initial, state_history):
        await asyncio.sleep(0)
        state_history["seen"] = only_initial
        actions.transition_to("next")

    context = make_context()
    spec = HandlerSpec.inspect(handler)
    assert spec.is_async is True
    asyncio.run(spec.func(**spec.arguments(context)))
    assert context.actions.action == {"kind": "transition", "state": "next"}
    assert context.state_history["seen"] == 1


def test_signature_is_inspected_once_at_registration(monkeypatch):
    import inspect

    def handler(actions, only_history):
        pass

    spec = HandlerSpec.inspect(handler)
    calls = []
    real = inspect.signature
    monkeypatch.setattr(inspect, "signature", lambda *a, **k: calls.append(a) or real(*a, **k))
    for _ in range(3):
        spec.arguments(make_context())
    assert calls == []
    assert [p.name for p in spec.parameters] == ["actions", "only_history"]
