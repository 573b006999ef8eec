"""Blueprint validation at `register_blueprint` (SPEC §2), handler choice (§1) and the DOT graph."""

from __future__ import annotations

import logging

import pytest

from avtomatika import OrchestratorEngine, StateMachineBlueprint
from avtomatika.config import Config
from avtomatika.errors import BlueprintError, HandlerError
from avtomatika.storage import MemoryStorage


@pytest.fixture
def engine() -> OrchestratorEngine:
    return OrchestratorEngine(MemoryStorage(), Config({}))


def linear(name: str = "linear", **kwargs) -> StateMachineBlueprint:
    bp = StateMachineBlueprint(name, **kwargs)

    @bp.handler_for("start", is_start=True)
    def start(actions):
        actions.transition_to("done")

    @bp.handler_for("done", is_end=True)
    def done(state_history):
        state_history["done"] = True

    return bp


# -- start states ----------------------------------------------------------------------------------------


def test_valid_blueprint_registers(engine):
    bp = linear()
    engine.register_blueprint(bp)
    assert engine.blueprints == {"linear": bp}
    assert bp.start_state == "start"


def test_no_start_state_is_rejected(engine):
    bp = StateMachineBlueprint("nostart")

    @bp.handler_for("a")
    def a(actions):
        actions.transition_to("finished")

    with pytest.raises(BlueprintError, match="'nostart' has no start state"):
        engine.register_blueprint(bp)
    assert "nostart" not in engine.blueprints


def test_empty_blueprint_is_rejected(engine):
    with pytest.raises(BlueprintError, match="no start state"):
        engine.register_blueprint(StateMachineBlueprint("empty"))


def test_two_start_states_are_rejected(engine):
    bp = StateMachineBlueprint("twostarts")

    @bp.handler_for("a", is_start=True)
    def a(actions):
        actions.transition_to("finished")

    @bp.handler_for("b", is_start=True)
    def b(actions):
        actions.transition_to("finished")

    with pytest.raises(BlueprintError) as info:
        engine.register_blueprint(bp)
    message = str(info.value)
    assert "'twostarts'" in message and "several start states" in message
    assert "a" in message and "b" in message
    assert "twostarts" not in engine.blueprints


def test_state_without_handler_is_rejected(engine):
    bp = linear("nohandler")
    bp.handler_for("orphan")
    with pytest.raises(BlueprintError, match="'nohandler'.*'orphan' has no handler"):
        engine.register_blueprint(bp)


# -- transition targets ----------------------------------------------------------------------------------


def test_unknown_transition_to_target_names_blueprint_and_state(engine):
    bp = StateMachineBlueprint("typo")

    @bp.handler_for("start", is_start=True)
    def start(actions):
        actions.transition_to("procces")

    @bp.handler_for("process", is_end=True)
    def process():
        pass

    with pytest.raises(BlueprintError) as info:
        engine.register_blueprint(bp)
    message = str(info.value)
    assert "'typo'" in message and "'start'" in message and "'procces'" in message
    assert info.value.context == {"blueprint": "typo", "state": "start", "target": "procces"}
    assert "typo" not in engine.blueprints


def test_unknown_target_with_keyword_argument(engine):
    bp = StateMachineBlueprint("kw")

    @bp.handler_for("start", is_start=True)
    def start(actions):
        actions.transition_to(state="nowhere")

    with pytest.raises(BlueprintError, match="'nowhere'"):
        engine.register_blueprint(bp)


def test_unknown_target_in_conditional_handler(engine):
    bp = StateMachineBlueprint("condtarget")

    @bp.handler_for("start", is_start=True)
    def start(actions):
        actions.transition_to("finished")

    @bp.handler_for("start").when("context.initial_data.x == 1")
    def start_x(actions):
        actions.transition_to("nowhere")

    with pytest.raises(BlueprintError, match="'start' leads to unknown state 'nowhere'"):
        engine.register_blueprint(bp)


@pytest.mark.parametrize("positional", [False, True])
def test_unknown_target_in_dispatch_task_transitions(engine, positional):
    bp = StateMachineBlueprint(f"task-{positional}")

    if positional:

        @bp.handler_for("start", is_start=True)
        def start(actions):
            actions.dispatch_task("resize", {"w": 1}, {"success": "finished", "failure": "cleanup"})

    else:

        @bp.handler_for("start", is_start=True)
        def start(actions):
            actions.dispatch_task(
                task_type="resize", params={}, transitions={"success": "finished", "failure": "cleanup"}
            )

    with pytest.raises(BlueprintError) as info:
        engine.register_blueprint(bp)
    assert "'start'" in str(info.value) and "'cleanup'" in str(info.value)


def test_unknown_target_in_approval_and_child_transitions(engine):
    approval = StateMachineBlueprint("approval")

    @approval.handler_for("start", is_start=True)
    def ask(actions):
        actions.await_human_approval("log", "ok?", {"approve": "finished", "reject": "rejected"})

    with pytest.raises(BlueprintError, match="'rejected'"):
        engine.register_blueprint(approval)

    parent = StateMachineBlueprint("parent")

    @parent.handler_for("start", is_start=True)
    def spawn(actions):
        actions.run_blueprint("child", {}, transitions={"success": "finished", "failure": "oops"})

    with pytest.raises(BlueprintError, match="'oops'"):
        engine.register_blueprint(parent)


def test_unknown_aggregate_into_is_rejected(engine):
    bp = StateMachineBlueprint("fanout")

    @bp.handler_for("start", is_start=True)
    def start(actions):
        actions.dispatch_parallel([{"task_type": "a"}], aggregate_into="gather")

    with pytest.raises(BlueprintError, match="'start' leads to unknown state 'gather'"):
        engine.register_blueprint(bp)

    @bp.aggregator_for("gather")
    def gather(actions):
        actions.transition_to("finished")

    engine.register_blueprint(bp)
    assert "fanout" in engine.blueprints


def test_reserved_end_states_are_valid_targets(engine):
    bp = StateMachineBlueprint("reserved")

    @bp.handler_for("start", is_start=True)
    def start(actions, initial_data):
        if initial_data.get("ok"):
            actions.transition_to("finished")
        else:
            actions.transition_to("failed")

    @bp.handler_for("other")
    def other(actions):
        actions.dispatch_task("t", {}, {"success": "finished", "failure": "failed"})

    engine.register_blueprint(bp)
    assert bp.is_end_state("finished") and bp.is_end_state("failed")
    assert not bp.is_end_state("start")


def test_dynamic_targets_are_not_checked(engine):
    bp = StateMachineBlueprint("dynamic")

    @bp.handler_for("start", is_start=True)
    def start(actions, initial_data):
        actions.transition_to(initial_data["next"])

    engine.register_blueprint(bp)


# -- duplicates ------------------------------------------------------------------------------------------


def test_duplicate_blueprint_name_is_rejected(engine):
    engine.register_blueprint(linear("same", api_version="v1", api_endpoint="a"))
    second = linear("same", api_version="v1", api_endpoint="b")
    with pytest.raises(BlueprintError, match="'same' is already registered"):
        engine.register_blueprint(second)
    assert engine.blueprints["same"] is not second


def test_same_blueprint_object_twice_is_rejected(engine):
    bp = linear("once")
    engine.register_blueprint(bp)
    with pytest.raises(BlueprintError, match="already registered"):
        engine.register_blueprint(bp)


def test_duplicate_route_is_rejected(engine):
    engine.register_blueprint(linear("first", api_version="v1", api_endpoint="/jobs/x"))
    with pytest.raises(BlueprintError) as info:
        engine.register_blueprint(linear("second", api_version="v1", api_endpoint="jobs/x"))
    assert "'second'" in str(info.value) and "/api/v1/jobs/x" in str(info.value) and "'first'" in str(info.value)
    assert "second" not in engine.blueprints


def test_same_endpoint_with_other_version_is_a_different_route(engine):
    engine.register_blueprint(linear("v1", api_version="v1", api_endpoint="jobs/x"))
    engine.register_blueprint(linear("v2", api_version="v2", api_endpoint="jobs/x"))
    engine.register_blueprint(linear("child-a"))
    engine.register_blueprint(linear("child-b"))  # blueprints without a route never collide
    assert set(engine.blueprints) == {"v1", "v2", "child-a", "child-b"}


def test_duplicate_default_handler_is_rejected():
    bp = StateMachineBlueprint("dup")

    @bp.handler_for("a", is_start=True)
    def first(actions):
        actions.transition_to("finished")

    with pytest.raises(BlueprintError, match="'a' already has a default handler"):

        @bp.handler_for("a")
        def second(actions):
            actions.transition_to("finished")


def test_duplicate_aggregator_is_rejected():
    bp = StateMachineBlueprint("dupagg")

    @bp.aggregator_for("gather")
    def first(actions):
        actions.transition_to("finished")

    with pytest.raises(BlueprintError, match="'gather' already has an aggregator"):

        @bp.aggregator_for("gather")
        def second(actions):
            actions.transition_to("finished")


# -- aggregators -----------------------------------------------------------------------------------------


def test_aggregator_without_dispatch_parallel_only_warns(engine, caplog):
    bp = linear("lonely")

    @bp.aggregator_for("gather")
    def gather(actions):
        actions.transition_to("finished")

    with caplog.at_level(logging.WARNING, logger="avtomatika.blueprint"):
        engine.register_blueprint(bp)
    assert "lonely" in engine.blueprints
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "'lonely'" in warnings[0].getMessage() and "'gather'" in warnings[0].getMessage()


def test_aggregator_with_dispatch_parallel_does_not_warn(engine, caplog):
    bp = StateMachineBlueprint("fan")

    @bp.handler_for("start", is_start=True)
    def start(actions):
        actions.dispatch_parallel([{"type": "a"}, {"task_type": "b"}], "gather")

    @bp.aggregator_for("gather")
    def gather(actions):
        actions.transition_to("finished")

    with caplog.at_level(logging.WARNING, logger="avtomatika.blueprint"):
        engine.register_blueprint(bp)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


# -- handler choice --------------------------------------------------------------------------------------


def conditional_blueprint(default_first: bool) -> tuple[StateMachineBlueprint, dict]:
    bp = StateMachineBlueprint(f"cond-{default_first}")
    handlers: dict = {}

    def default(actions):
        actions.transition_to("finished")

    def big(actions):
        actions.transition_to("finished")

    def huge(actions):
        actions.transition_to("finished")

    if default_first:
        handlers["default"] = bp.handler_for("route", is_start=True)(default)
    handlers["big"] = bp.handler_for("route").when("context.initial_data.size >= 100")(big)
    handlers["huge"] = bp.handler_for("route").when("context.initial_data.size >= 1000")(huge)
    if not default_first:
        handlers["default"] = bp.handler_for("route", is_start=True)(default)
    return bp, handlers


@pytest.mark.parametrize("default_first", [True, False])
@pytest.mark.parametrize(
    ("data", "expected"),
    [({"size": 5}, "default"), ({"size": 100}, "big"), ({"size": 5000}, "big"), ({}, "default")],
)
def test_conditional_and_default_in_either_order(engine, default_first, data, expected):
    bp, handlers = conditional_blueprint(default_first)
    engine.register_blueprint(bp)
    assert bp.find_handler("route", data, {}).func is handlers[expected]


def test_first_matching_condition_in_declaration_order_wins():
    bp = StateMachineBlueprint("order")
    calls = {}
    for label, condition in [
        ("history", "context.state_history.tier == 'gold'"),
        ("initial", "context.initial_data.tier == 'gold'"),
    ]:

        def handler(actions, label=label):
            actions.transition_to("finished")

        calls[label] = bp.handler_for("s").when(condition)(handler)
    both = bp.find_handler("s", {"tier": "gold"}, {"tier": "gold"})
    only_initial = bp.find_handler("s", {"tier": "gold"}, {})
    assert both.func is calls["history"]
    assert only_initial.func is calls["initial"]


def test_no_match_and_no_default_is_a_handler_error():
    bp = StateMachineBlueprint("nomatch")

    @bp.handler_for("s").when("context.initial_data.x == 1")
    def one(actions):
        actions.transition_to("finished")

    assert bp.find_handler("s", {"x": 1}, {}).func is one
    with pytest.raises(HandlerError) as info:
        bp.find_handler("s", {"x": 2}, {})
    message = str(info.value)
    assert "'s'" in message and "no condition matched" in message and "context.initial_data.x == 1" in message


def test_find_handler_for_reserved_and_aggregator_states():
    bp = linear("lookup")

    @bp.aggregator_for("gather")
    def gather(actions):
        actions.transition_to("finished")

    assert bp.find_handler("finished", {}, {}) is None
    assert bp.find_handler("failed", {}, {}) is None
    assert bp.find_handler("gather", {}, {}).func is gather
    with pytest.raises(HandlerError, match="no state 'ghost'"):
        bp.find_handler("ghost", {}, {})


# -- DOT graph -------------------------------------------------------------------------------------------


def graph_blueprint() -> StateMachineBlueprint:
    bp = StateMachineBlueprint("graph")

    @bp.handler_for("start", is_start=True)
    def start(actions):
        actions.transition_to("work")

    @bp.handler_for("work")
    def work(actions):
        actions.dispatch_task("resize", {"w": 1}, transitions={"success": "review", "failure": "failed"})

    @bp.handler_for("review")
    def review(actions):
        actions.await_human_approval("log", "ok?", transitions={"approve": "spawn", "reject": "failed"})

    @bp.handler_for("spawn")
    def spawn(actions):
        actions.run_blueprint("child", {"a": 1}, transitions={"success": "fan", "failure": "failed"})

    @bp.handler_for("fan")
    def fan(actions):
        actions.dispatch_parallel([{"task_type": "x"}, {"type": "y"}], aggregate_into="gather")

    @bp.aggregator_for("gather")
    def gather(actions):
        actions.transition_to("finished")

    return bp


def test_graph_has_every_kind_of_edge(engine):
    bp = graph_blueprint()
    engine.register_blueprint(bp)
    dot = bp.render_graph()
    assert dot.startswith('digraph "graph" {')
    assert dot.rstrip().endswith("}")
    assert '__start__ -> "start";' in dot
    assert '"start" -> "work" [style=solid];' in dot
    assert '"work" -> "review" [style=bold, label="task: success"];' in dot
    assert '"work" -> "failed" [style=bold, label="task: failure"];' in dot
    assert '"review" -> "spawn" [style=dashed, label="decision: approve"];' in dot
    assert '"review" -> "failed" [style=dashed, label="decision: reject"];' in dot
    assert '"spawn" -> "fan" [style=dotted, label="child: success"];' in dot
    assert '"spawn" -> "failed" [style=dotted, label="child: failure"];' in dot
    assert '"fan" -> "gather" [style=tapered, label="fan-in"];' in dot
    assert '"gather" -> "finished" [style=solid];' in dot
    assert {e.kind for e in bp.edges} == {"transition", "task", "approval", "child", "fan-in"}


def test_graph_marks_end_states_and_renders_before_registration():
    bp = graph_blueprint()
    dot = bp.render_graph()  # validates on demand
    assert '"finished" [shape=doublecircle];' in dot
    assert '"failed" [shape=doublecircle];' in dot
    assert '"start" [shape=box];' in dot
    assert '"gather" [shape=box];' in dot


def test_graph_quotes_names():
    bp = StateMachineBlueprint('we "quote"')

    @bp.handler_for('a"b', is_start=True)
    def start(actions):
        actions.transition_to("finished")

    dot = bp.render_graph()
    assert 'digraph "we \\"quote\\"" {' in dot
    assert '"a\\"b" -> "finished"' in dot


# -- routes ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["jobs/resize", "/jobs/resize", "/jobs/resize/"])
def test_endpoint_with_or_without_leading_slash(endpoint):
    assert StateMachineBlueprint("r", api_version="v1", api_endpoint=endpoint).route == "/api/v1/jobs/resize"


@pytest.mark.parametrize("endpoint", ["resize", "/resize"])
def test_route_without_version(endpoint):
    assert StateMachineBlueprint("r", api_endpoint=endpoint).route == "/api/resize"


def test_blueprint_without_endpoint_has_no_route():
    assert StateMachineBlueprint("child", api_version="v1").route is None


@pytest.mark.parametrize("name", ["", None, 5])
def test_blueprint_name_must_be_a_non_empty_string(name):
    with pytest.raises(BlueprintError):
        StateMachineBlueprint(name)  # type: ignore[arg-type]


def test_data_stores_are_a_namespace():
    store = object()
    bp = StateMachineBlueprint("stores", data_stores={"prices": store})
    assert bp.data_stores.prices is store


# -- checks a newcomer needs (issue 11) ------------------------------------------------------------------


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "avtomatika.blueprint"]


def test_a_state_only_conditional_handlers_serve_is_rejected(engine):
    bp = StateMachineBlueprint("typo")

    @bp.handler_for("start", is_start=True)
    def start(actions):
        actions.transition_to("check")

    @bp.handler_for("check").when("context.initial_data.kind == 'video'")
    def video(actions):
        actions.transition_to("finished")

    @bp.handler_for("chek")  # the default handler, with a typo in its state name
    def default(actions):
        actions.transition_to("finished")

    with pytest.raises(BlueprintError) as info:
        engine.register_blueprint(bp)
    message = str(info.value)
    assert message.startswith("blueprint 'typo': state 'check' has only conditional handlers")
    assert "context.initial_data.kind == 'video'" in message and "no default" in message
    assert "typo" not in engine.blueprints


def test_unreachable_states_are_logged_at_registration(engine, caplog):
    bp = linear("island")

    @bp.handler_for("orphan")
    def orphan(actions):
        actions.transition_to("done")

    with caplog.at_level(logging.WARNING, logger="avtomatika.blueprint"):
        engine.register_blueprint(bp)
    assert "island" in engine.blueprints
    assert _warnings(caplog) == [
        "blueprint 'island': state 'orphan' is not reachable from the start state 'start' by any transition "
        "visible in the handlers (a typo in a state name?)"
    ]


def test_computed_targets_silence_the_unreachable_warning(engine, caplog):
    bp = StateMachineBlueprint("computed")

    @bp.handler_for("start", is_start=True)
    def start(actions, initial_data):
        actions.transition_to(initial_data["next"])

    @bp.handler_for("a", is_end=True)
    def a(state_history):
        state_history["a"] = 1

    with caplog.at_level(logging.WARNING, logger="avtomatika.blueprint"):
        engine.register_blueprint(bp)
    assert _warnings(caplog) == []


def test_dispatch_task_without_success_is_logged_at_registration(engine, caplog):
    bp = StateMachineBlueprint("nosuccess")

    @bp.handler_for("start", is_start=True)
    def start(actions):
        actions.dispatch_task("resize", {}, transitions={"failure": "failed", "done": "finished"})

    @bp.handler_for("other")
    def other(actions):
        actions.dispatch_task("resize", {}, {"success": "finished"})

    bp.handler_for("start").when("context.initial_data.x == 1")(other)
    with caplog.at_level(logging.WARNING, logger="avtomatika.blueprint"):
        engine.register_blueprint(bp)
    warnings = [w for w in _warnings(caplog) if "dispatch_task" in w]
    assert len(warnings) == 1
    line = start.__code__.co_firstlineno + 2
    assert warnings[0] == (
        f"blueprint 'nosuccess': state 'start': dispatch_task at {__file__}:{line} has no 'success' in "
        "transitions, so a successful result fails the job"
    )


def test_bundled_blueprints_register_without_warnings(caplog):
    import importlib

    with caplog.at_level(logging.WARNING, logger="avtomatika.blueprint"):
        for module in ("tests.apps.suite_app", "avtomatika.demo"):
            built = importlib.import_module(module)
            if hasattr(built, "build_engine"):
                built.build_engine()
    assert _warnings(caplog) == []
