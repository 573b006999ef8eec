"""Error mapping and result shapes: what a handler's return value or exception becomes on the wire."""

from __future__ import annotations

import math

import pytest

from avtomatika.worker import (
    ErrorCode,
    InvalidInputError,
    PermanentError,
    TaskCancelled,
    TaskFailure,
    TaskResult,
    TransientError,
    WorkerTaskError,
)
from avtomatika.worker.results import result_body, result_from_exception, result_from_value


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (TransientError("gpu busy"), "TRANSIENT_ERROR"),
        (PermanentError("corrupt file"), "PERMANENT_ERROR"),
        (InvalidInputError("width < 0"), "INVALID_INPUT_ERROR"),
    ],
)
def test_typed_errors_map_to_their_code(exc: WorkerTaskError, code: str) -> None:
    assert result_from_exception(exc).to_payload() == {
        "status": "failure",
        "data": {},
        "error": {"code": code, "message": str(exc)},
    }


def test_typed_errors_share_one_base_and_the_library_root() -> None:
    from avtomatika import AvtomatikaError

    for cls in (TransientError, PermanentError, InvalidInputError):
        assert issubclass(cls, WorkerTaskError)
        assert issubclass(cls, AvtomatikaError)
    assert {c.code for c in (TransientError, PermanentError, InvalidInputError)} == set(ErrorCode)


def test_any_other_exception_is_transient_with_its_message() -> None:
    assert result_from_exception(ConnectionResetError("peer gone")).to_payload() == {
        "status": "failure",
        "data": {},
        "error": {"code": "TRANSIENT_ERROR", "message": "ConnectionResetError: peer gone"},
    }
    assert result_from_exception(RuntimeError()).error == {"code": "TRANSIENT_ERROR", "message": "RuntimeError"}


def test_task_failure_has_no_code_and_keeps_its_data() -> None:
    result = result_from_exception(TaskFailure("no face found", data={"faces": 0}))
    assert result.to_payload() == {"status": "failure", "data": {"faces": 0}, "error": {"message": "no face found"}}


def test_task_cancelled_is_the_cancelled_status() -> None:
    assert result_from_exception(TaskCancelled("stop")).to_payload() == {"status": "cancelled", "data": {}}


def test_plain_dict_is_the_data_of_a_success() -> None:
    assert result_from_value({"url": "s3://x"}).to_payload() == {"status": "success", "data": {"url": "s3://x"}}
    assert result_from_value(None).to_payload() == {"status": "success", "data": {}}


def test_task_result_carries_a_custom_status() -> None:
    assert result_from_value(TaskResult("needs_review", {"score": 0.4})).to_payload() == {
        "status": "needs_review",
        "data": {"score": 0.4},
    }


def test_envelope_dict_is_read_as_a_result() -> None:
    value = {"status": "needs_review", "data": {"score": 0.4}}
    assert result_from_value(value).to_payload() == value
    coded = {"status": "failure", "error": {"code": "PERMANENT_ERROR", "message": "bad"}}
    assert result_from_value(coded).to_payload() == {**coded, "data": {}}


def test_dict_with_other_keys_besides_status_is_data() -> None:
    value = {"status": "done", "rows": 3}
    assert result_from_value(value).to_payload() == {"status": "success", "data": value}


@pytest.mark.parametrize(
    "value",
    [
        ["not", "a", "dict"],
        {"status": "success", "data": [1, 2]},
        {"status": "failure", "error": {"code": "NOT_A_CODE", "message": "x"}},
        {"when": object()},
        {"ratio": math.nan},
    ],
)
def test_unusable_return_values_are_permanent_errors(value: object) -> None:
    result = result_from_value(value)
    assert result.status == "failure"
    assert result.error is not None and result.error["code"] == "PERMANENT_ERROR"


def test_task_result_validates_its_fields() -> None:
    with pytest.raises(TypeError):
        TaskResult("")
    with pytest.raises(TypeError):
        TaskResult("success", [1])  # type: ignore[arg-type]


def test_result_body_is_the_whole_request() -> None:
    assert result_body("j", "t", "w", TaskResult("success", {"a": 1})) == {
        "job_id": "j",
        "task_id": "t",
        "worker_id": "w",
        "result": {"status": "success", "data": {"a": 1}},
    }
