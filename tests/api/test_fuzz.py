"""Fuzzing the HTTP API, both modes: never a 5xx (but the documented 501 of a feature that is not enabled),
every error is the JSON shape.

- Schemathesis generates requests for every operation of the generated OpenAPI document
  (`/_public/openapi.json`), valid and invalid (positive and negative generation), each sent with a valid, a
  wrong or no token.
- Hypothesis sends arbitrary bodies (any bytes, any Unicode including lone surrogates as escapes, deep
  nesting, huge numbers) to the routes that take bodies.

Runs are bounded (max_examples, no example database, derandomized) so CI stays fast and repeatable.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.apps import suite_app
from tests.services import GLOBAL_WORKER_TOKEN

# Schemathesis's own strategies use the `random` module, which Hypothesis reports with a deprecation warning.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")

# Create routes of test blueprints that sleep for a client-chosen time or write to a client-chosen file.
UNSAFE = {"slow", "poison", "sleepy_native", "native_edges", "crash", "fixable"}
TOKENS = {
    "client": {"X-Avtomatika-Token": suite_app.CLIENT_A},
    "admin": {"X-Avtomatika-Token": suite_app.ADMIN},
    "worker": {"X-Worker-Token": GLOBAL_WORKER_TOKEN},
    "wrong": {"X-Avtomatika-Token": "wrong-token", "X-Worker-Token": "wrong-token"},
    "none": {},
}
FUZZ = settings(
    max_examples=10,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


def _json_error(answer: Any, where: str) -> None:
    # 501 is the documented answer of a feature this deployment has not enabled (history, SVG without `dot`)
    assert answer.status_code < 500 or answer.status_code == 501, (where, answer.status_code, answer.text[:300])
    if answer.status_code >= 400:
        body = answer.json()
        assert set(body) == {"error", "details"} and isinstance(body["error"], str), (where, answer.text[:300])


def _operations(base: str) -> list[Any]:
    schema = schemathesis.openapi.from_url(base + "/_public/openapi.json")
    found = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.method.upper() == "POST" and any(operation.path == f"/api/v1/jobs/{name}" for name in UNSAFE):
            continue
        found.append(operation)
    assert len(found) > 15, [o.label for o in found]
    return found


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_schemathesis_finds_no_5xx(orchestrator, mode):
    fuzzed = 0
    for operation in _operations(orchestrator.base):

        @FUZZ
        @given(case=operation.as_strategy(generation_mode=mode), who=st.sampled_from(sorted(TOKENS)))
        def call(case: Any, who: str) -> None:
            if isinstance(case.query, dict) and "wait" in case.query:
                case.query["wait"] = 0  # a long-poll on a real job would only slow the run down
            answer = case.call(base_url=orchestrator.base, headers=TOKENS[who], timeout=15)
            _json_error(
                answer, f"{case.operation.label} as {who}: {case.path_parameters} {case.query} {case.body!r:.200}"
            )

        try:
            call()
            fuzzed += 1
        except Unsatisfiable:  # no invalid input exists for an operation without parameters or body
            assert mode == GenerationMode.NEGATIVE, operation.label
    assert fuzzed > 10


BODY_ROUTES = [
    ("POST", "/api/v1/jobs/linear", "client"),
    ("POST", "/api/v1/jobs/tasks", "client"),
    ("POST", "/_worker/workers/register", "worker"),
    ("POST", "/_worker/tasks/result", "worker"),
    ("PATCH", "/_worker/workers/fuzz-worker", "worker"),
    ("POST", "/_public/webhooks/approval/00000000-0000-4000-8000-000000000000", "client"),
]
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8")),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
RAW_BODIES = st.one_of(
    st.binary(max_size=300),
    JSON_VALUES.map(json.dumps).map(str.encode),
    st.sampled_from(
        [
            b'{"a": NaN}',
            b'{"a": 1e999}',
            b'{"a": "\\ud800"}',
            b'{"worker_id": "\\udfff"}',
            b"[" * 5000 + b"]" * 5000,
            b'{"a": ' + b"9" * 5000 + b"}",
            b"\xff\xfe{}",
            b"",
        ]
    ),
)


@pytest.mark.parametrize(("method", "path", "who"), BODY_ROUTES, ids=lambda v: str(v)[:30])
def test_arbitrary_bodies_never_get_a_5xx(orchestrator, method, path, who):
    with httpx.Client(base_url=orchestrator.base, headers=TOKENS[who], timeout=15) as http:

        @FUZZ
        @given(body=RAW_BODIES)
        def send(body: bytes) -> None:
            answer = http.request(method, path, content=body, headers={"Content-Type": "application/json"})
            _json_error(answer, f"{method} {path} {body[:100]!r}")

        send()
