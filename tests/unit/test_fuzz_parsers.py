"""Hypothesis fuzzers for the parsers of untrusted-ish text: the `.when()` condition grammar and the TOML
loaders of clients.toml / workers.toml. Each either accepts its input or raises its own error type, never
anything else; accepted input behaves as the grammar says."""

from __future__ import annotations

import math
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avtomatika.conditions import parse_condition
from avtomatika.errors import ConditionSyntaxError, ConfigError
from avtomatika.security import load_clients, load_worker_tokens

FUZZ = settings(max_examples=150, deadline=None, database=None, derandomize=True)
TEXT = st.text(st.characters(codec="utf-8"), max_size=80)
OPS = ["==", "!=", ">=", "<=", ">", "<"]
FIELD = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,10}\Z")
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=10,
)


@FUZZ
@given(source=st.one_of(TEXT, st.builds(lambda a, b: f"context.{a}{b}", TEXT, TEXT)))
def test_any_text_parses_or_is_a_condition_syntax_error(source):
    try:
        condition = parse_condition(source)
    except ConditionSyntaxError as exc:
        assert exc.context["condition"] == source
        return
    assert condition.op in OPS and condition.area in ("initial_data", "state_history")


@FUZZ
@given(
    area=st.sampled_from(["initial_data", "state_history"]),
    field=FIELD,
    op=st.sampled_from(OPS),
    value=st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.none(), TEXT),
    spaces=st.sampled_from(["", " ", "  ", "\t"]),
    data=st.dictionaries(FIELD, JSONISH, max_size=4),
)
def test_well_formed_conditions_round_trip_and_never_raise(area, field, op, value, spaces, data):
    literal = repr(value)
    condition = parse_condition(f"{spaces}context.{area}.{field}{spaces}{op}{spaces}{literal}{spaces}")
    assert (condition.area, condition.field, condition.op) == (area, field, op)
    assert condition.value == value or (isinstance(value, float) and math.isclose(condition.value, value))
    assert type(condition.value) is type(value)
    for initial, history in ((data, {}), ({}, data), (data, data), ({field: value}, {field: value})):
        assert condition.evaluate(initial, history) in (True, False)
    if op == "==":
        assert condition.evaluate({field: value}, {field: value}) is True


TOML_SCALARS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(str),
    st.booleans().map(lambda b: str(b).lower()),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20).map(
        lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    ),
    st.sampled_from(['"100/second"', '"3 per minute"', '"admin"', '"client"', '"boss"', '""', "[]", "{}"]),
)
KEYS = st.sampled_from(["token", "plan", "role", "rate_limit", "monthly_attempts", "extra"])
TABLE_NAMES = st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=8)


@st.composite
def toml_documents(draw):
    """Mostly well-formed TOML with the loaders' keys and random values, sometimes mangled."""
    lines = []
    for name in draw(st.lists(TABLE_NAMES, max_size=4)):
        lines.append(f"[{name}]")
        for key, value in draw(st.dictionaries(KEYS, TOML_SCALARS, max_size=5)).items():
            lines.append(f"{key} = {value}")
    text = "\n".join(lines) + "\n"
    if draw(st.integers(0, 9)) == 0:  # a random cut or insertion
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(TEXT) + text[cut:]
    return text


@pytest.mark.parametrize("loader", [load_clients, load_worker_tokens], ids=["clients", "workers"])
@settings(max_examples=150, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(document=st.one_of(toml_documents(), st.binary(max_size=200)))
def test_toml_loaders_accept_or_raise_config_error(tmp_path: Path, loader, document):
    path = tmp_path / "config.toml"
    path.write_bytes(document if isinstance(document, bytes) else document.encode("utf-8"))
    try:
        loaded = loader(str(path))
    except ConfigError as exc:
        assert str(path) in str(exc)
        return
    if loader is load_worker_tokens:
        assert all(isinstance(k, str) and len(v) == 64 for k, v in loaded.items())
        assert len(set(loaded.values())) == len(loaded)
    else:
        assert all(c.token_hash and len(c.token_hash) == 64 for c in loaded)
