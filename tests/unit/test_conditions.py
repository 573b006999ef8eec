"""The `.when()` grammar (SPEC §1): parsed at decoration time, evaluated without `eval`, never raising."""

from __future__ import annotations

import pytest

from avtomatika import StateMachineBlueprint
from avtomatika.conditions import parse_condition
from avtomatika.errors import BlueprintError, ConditionSyntaxError


def holds(condition: str, initial_data: dict | None = None, state_history: dict | None = None) -> bool:
    return parse_condition(condition).evaluate(initial_data or {}, state_history or {})


# -- values ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("'urgent'", "urgent"),
        ('"urgent"', "urgent"),
        ("'5'", "5"),
        ('"5"', "5"),
        ("''", ""),
        ("'a b == c'", "a b == c"),
        ('"it\'s"', "it's"),
        ("'say \"hi\"'", 'say "hi"'),
        ("5", 5),
        ("0", 0),
        ("-5", -5),
        ("+7", 7),
        ("2.5", 2.5),
        ("-0.25", -0.25),
        ("1e3", 1000.0),
        ("True", True),
        ("False", False),
        ("None", None),
    ],
)
def test_value_literals(literal, expected):
    value = parse_condition(f"context.initial_data.x == {literal}").value
    assert value == expected
    assert type(value) is type(expected)


def test_quoted_number_stays_a_string():
    assert holds("context.initial_data.x == '5'", {"x": "5"})
    assert not holds("context.initial_data.x == '5'", {"x": 5})
    assert holds('context.initial_data.x == "5"', {"x": "5"})
    assert not holds("context.initial_data.x == 5", {"x": "5"})


def test_integer_float_and_negative_values_compare_as_numbers():
    assert holds("context.initial_data.size >= 100", {"size": 100.0})
    assert holds("context.initial_data.size < 99.5", {"size": 99})
    assert holds("context.initial_data.delta == -3", {"delta": -3})
    assert holds("context.initial_data.delta < -2", {"delta": -3})
    assert not holds("context.initial_data.delta > -2", {"delta": -3})


@pytest.mark.parametrize(
    ("condition", "data", "expected"),
    [
        ("context.initial_data.flag == True", {"flag": True}, True),
        ("context.initial_data.flag == True", {"flag": False}, False),
        ("context.initial_data.flag == False", {"flag": False}, True),
        ("context.initial_data.flag != False", {"flag": True}, True),
        ("context.initial_data.flag == None", {"flag": None}, True),
        ("context.initial_data.flag == None", {"flag": 0}, False),
        ("context.initial_data.flag != None", {"flag": 0}, True),
        ("context.initial_data.flag != None", {"flag": None}, False),
        ("context.initial_data.flag == None", {"flag": ""}, False),
    ],
)
def test_constants(condition, data, expected):
    assert holds(condition, data) is expected


# -- operators -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "actual", "expected"),
    [
        ("==", 5, True),
        ("==", 6, False),
        ("!=", 5, False),
        ("!=", 6, True),
        (">", 6, True),
        (">", 5, False),
        ("<", 4, True),
        ("<", 5, False),
        (">=", 5, True),
        (">=", 4, False),
        ("<=", 5, True),
        ("<=", 6, False),
    ],
)
def test_every_operator_on_numbers(op, actual, expected):
    assert holds(f"context.initial_data.n {op} 5", {"n": actual}) is expected


@pytest.mark.parametrize(
    ("op", "expected"),
    [("==", False), ("!=", True), (">", True), ("<", False), (">=", True), ("<=", False)],
)
def test_every_operator_on_strings(op, expected):
    assert holds(f"context.state_history.word {op} 'apple'", state_history={"word": "banana"}) is expected


def test_operators_without_spaces_and_with_surrounding_whitespace():
    assert holds("context.initial_data.n>=5", {"n": 5})
    assert holds("  context.initial_data.n   <  5  ", {"n": 4})


# -- areas -----------------------------------------------------------------------------------------------


def test_initial_data_area_reads_initial_data_only():
    condition = "context.initial_data.kind == 'a'"
    assert holds(condition, initial_data={"kind": "a"})
    assert not holds(condition, initial_data={}, state_history={"kind": "a"})


def test_state_history_area_reads_state_history_only():
    condition = "context.state_history.kind == 'a'"
    assert holds(condition, state_history={"kind": "a"})
    assert not holds(condition, initial_data={"kind": "a"}, state_history={})


def test_parsed_parts():
    condition = parse_condition("context.state_history.score <= 0.5")
    assert (condition.area, condition.field, condition.op, condition.value) == ("state_history", "score", "<=", 0.5)


# -- never an exception ----------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["==", "!=", ">", "<", ">=", "<="])
def test_missing_field_is_false_for_every_operator(op):
    assert holds(f"context.initial_data.absent {op} 1") is False
    assert holds(f"context.state_history.absent {op} None") is False


@pytest.mark.parametrize(
    ("condition", "value"),
    [
        ("context.initial_data.x == 5", "5"),
        ("context.initial_data.x > 5", "6"),
        ("context.initial_data.x < 'b'", 1),
        ("context.initial_data.x >= 'a'", None),
        ("context.initial_data.x <= 3", None),
        ("context.initial_data.x == 1", True),
        ("context.initial_data.x == True", 1),
        ("context.initial_data.x > 0", True),
        ("context.initial_data.x < True", 0),
        ("context.initial_data.x >= False", False),
        ("context.initial_data.x > 1", [1, 2]),
        ("context.initial_data.x == 1", {"a": 1}),
        ("context.initial_data.x < 'z'", ["a"]),
    ],
)
def test_incompatible_types_are_false_not_errors(condition, value):
    assert holds(condition, {"x": value}) is False


def test_incompatible_types_with_not_equal_are_false():
    # SPEC §1: a comparison between incompatible types evaluates to False, `!=` included
    assert holds("context.initial_data.x != 5", {"x": "5"}) is False
    assert holds("context.initial_data.x != 1", {"x": True}) is False


def test_area_that_is_not_a_mapping_is_false():
    assert parse_condition("context.initial_data.x == 1").evaluate(["x"], {}) is False  # type: ignore[arg-type]


# -- rejected at parse time ------------------------------------------------------------------------------


REJECTED = [
    "context.unknown_area.x == 1",
    "context.data.x == 1",
    "initial_data.x == 1",
    "context.initial_data == 1",
    "context.initial_data.a.b == 1",
    "context.state_history.a[0] == 1",
    "context.initial_data.x == 1 and context.initial_data.y == 2",
    "context.initial_data.x == 1 or context.initial_data.y == 2",
    "context.initial_data.x == 'a' and context.initial_data.y == 'b'",
    "not context.initial_data.x == 1",
    "context.initial_data.x == len('abc')",
    "context.initial_data.x == str(5)",
    "context.initial_data.x == urgent",
    "context.initial_data.x == true",
    "context.initial_data.x == none",
    "context.initial_data.x == __import__('os').system('true')",
    "__import__('os').system('true')",
    "context.initial_data.x == [1, 2]",
    "context.initial_data.x == 1+1",
    "context.initial_data.x == (1)",
    "context.initial_data.x == -True",
    "context.initial_data.x == 1 == 1",
    "context.initial_data.x = 1",
    "context.initial_data.x === 1",
    "context.initial_data.x =< 1",
    "context.initial_data.x in 'abc'",
    "context.initial_data.x == 'unterminated",
    "context.initial_data.x == ",
    "context.initial_data.x ==",
    "context.initial_data.x",
    "",
    "   ",
]


@pytest.mark.parametrize("source", REJECTED)
def test_rejected_with_the_offending_string_in_the_message(source):
    with pytest.raises(ConditionSyntaxError) as info:
        parse_condition(source)
    assert source in str(info.value)
    assert info.value.context["condition"] == source


def test_condition_error_is_a_blueprint_error():
    with pytest.raises(BlueprintError):
        parse_condition("context.nowhere.x == 1")


@pytest.mark.parametrize("source", [None, 5, b"context.initial_data.x == 1", ["context.initial_data.x == 1"]])
def test_non_string_is_rejected(source):
    with pytest.raises(ConditionSyntaxError, match="must be a string") as info:
        parse_condition(source)  # type: ignore[arg-type]
    assert repr(source) in str(info.value)


def test_condition_with_both_quote_kinds_is_rejected_and_kept_verbatim_on_the_error():
    source = "context.initial_data.x == 'a' or context.initial_data.y == \"b\""
    with pytest.raises(ConditionSyntaxError) as info:
        parse_condition(source)
    assert info.value.context["condition"] == source


# -- through the decorator -------------------------------------------------------------------------------


def test_when_registers_a_conditional_handler():
    bp = StateMachineBlueprint("conds")

    @bp.handler_for("route").when("context.initial_data.priority >= 5")
    def urgent(actions):
        actions.transition_to("finished")

    spec = bp.find_handler("route", {"priority": 7}, {})
    assert spec is not None and spec.func is urgent


@pytest.mark.parametrize(
    "source",
    ["context.initial_data.x == 1 and context.initial_data.y == 2", "context.secrets.x == 1", "", "x == y"],
)
def test_when_raises_at_decoration_time(source):
    bp = StateMachineBlueprint("conds")
    registration = bp.handler_for("route")
    with pytest.raises(ConditionSyntaxError) as info:
        registration.when(source)
    assert source in str(info.value)
    assert bp.states["route"].conditional == []


def test_when_with_non_string_raises_at_decoration_time():
    bp = StateMachineBlueprint("conds")
    with pytest.raises(ConditionSyntaxError):

        @bp.handler_for("route").when(42)  # type: ignore[arg-type]
        def handler(actions):
            actions.transition_to("finished")
