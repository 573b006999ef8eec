"""The `.when()` condition grammar: parsed once at import time, evaluated without `eval`.

Grammar: ``context.<area>.<field> <op> <value>`` where area is ``initial_data`` or ``state_history``,
op is one of ``== != > < >= <=`` and value is a quoted string, an integer, a float, ``True``, ``False``
or ``None``. A missing field, or a comparison between incompatible types, is False (never an exception).
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConditionSyntaxError

_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_EXPRESSION = re.compile(
    r"^\s*context\.(?P<area>initial_data|state_history)\.(?P<field>[A-Za-z_][A-Za-z0-9_]*)"
    r"\s*(?P<op>==|!=|>=|<=|>|<)\s*(?P<value>.+?)\s*$",
    re.DOTALL,
)
_STRING = re.compile(r"""^(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")$""", re.DOTALL)
_INTEGER = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?$")
_CONSTANTS: dict[str, Any] = {"True": True, "False": False, "None": None}
_MISSING = object()


def _parse_value(text: str, source: str) -> Any:
    if _STRING.match(text):
        return ast.literal_eval(text)  # a string literal only: the regex admits nothing else
    if text in _CONSTANTS:
        return _CONSTANTS[text]
    if _INTEGER.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    raise ConditionSyntaxError(f"invalid value {text!r} in condition {source!r}", condition=source)


def _kind(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "str"
    return "other"


@dataclass(frozen=True)
class Condition:
    """One parsed condition; call `evaluate` with the job's data areas."""

    source: str
    area: str
    field: str
    op: str
    value: Any

    def evaluate(self, initial_data: Mapping[str, Any], state_history: Mapping[str, Any]) -> bool:
        """True when the condition holds; missing fields and incompatible types give False."""
        area = initial_data if self.area == "initial_data" else state_history
        if not isinstance(area, Mapping):
            return False
        actual = area.get(self.field, _MISSING)
        if actual is _MISSING:
            return False
        left, right = _kind(actual), _kind(self.value)
        if self.op in ("==", "!=") and "none" in (left, right):
            return bool(_OPERATORS[self.op](actual, self.value))
        if left != right or left in ("none", "other"):
            return False
        if left == "bool" and self.op not in ("==", "!="):
            return False
        try:
            return bool(_OPERATORS[self.op](actual, self.value))
        except TypeError:
            return False


def parse_condition(source: str) -> Condition:
    """Parse a `.when()` string or raise `ConditionSyntaxError` naming it."""
    if not isinstance(source, str):
        raise ConditionSyntaxError(f"condition must be a string, got {source!r}", condition=source)
    match = _EXPRESSION.match(source)
    if match is None:
        raise ConditionSyntaxError(
            f"invalid condition {source!r}: expected 'context.<initial_data|state_history>.<field> <op> <value>'",
            condition=source,
        )
    return Condition(
        source=source,
        area=match["area"],
        field=match["field"],
        op=match["op"],
        value=_parse_value(match["value"], source),
    )
