"""Every worker route with bad input or bad credentials: a 4xx JSON error `{"error", "details"}`, and nothing changes.

"Nothing changes" is checked on what the route would have changed: the worker record (register, heartbeat)
or the job and its lease (results; the lease still works afterwards).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.apps import suite_app
from tests.services import GLOBAL_WORKER_TOKEN
from tests.workers.support import every_route, is_json_error, queued_job, record_of, unique, view, worker

JSON = {"Content-Type": "application/json"}
MALFORMED = {
    "truncated": b'{"worker_id": ',
    "not_json": b"not json",
    "nan": b'{"worker_id": NaN}',
    "infinity": b'{"load": Infinity}',
    "bad_utf8": b"\xff\xfe{}",
    "trailing": b"{} {}",
    "deep": b"[" * 100_000 + b"]" * 100_000,
}
NOT_OBJECTS: dict[str, Any] = {"list": [], "string": "x", "number": 5, "true": True, "list_of_objects": [{}]}
GPU_TOKEN = "gpu-worker-01-secret"  # tests/apps/workers.toml
CPU_TOKEN = "cpu-worker-02-secret"


def escaped(body: Any) -> bytes:
    """`body` as JSON bytes with `\\uXXXX` escapes (httpx cannot encode a lone surrogate itself)."""
    return json.dumps(body).encode()


def send(w, method: str, path: str, body: Any) -> httpx.Response:
    """`body`: bytes are sent as they are (with a JSON content type), anything else as JSON."""
    if isinstance(body, bytes):
        return w.http.request(method, path, content=body, headers=JSON)
    return w.http.request(method, path, json=body)


def check_all(w, method: str, path: str, cases: dict[str, Any], unchanged) -> None:
    """Send every case; each must get a 400 JSON error (413 when oversized) and leave `unchanged()` equal."""
    before = unchanged()
    for name, body in cases.items():
        answer = send(w, method, path, body)
        expected = 413 if name.startswith("oversized") else 400
        assert answer.status_code == expected, (name, answer.status_code, answer.text)
        is_json_error(answer, expected)
        assert unchanged() == before, name


# -- register ---------------------------------------------------------------------------------------------


def register_cases(worker_id: str, task_type: str) -> dict[str, Any]:
    ok = {"worker_id": worker_id, "supported_tasks": [task_type, "evil"]}
    cases: dict[str, Any] = dict(MALFORMED)
    cases.update(NOT_OBJECTS)
    cases.update(
        {
            "empty_body": b"",
            "null": b"null",
            "missing_worker_id": {"supported_tasks": [task_type]},
            "missing_supported_tasks": {"worker_id": worker_id, "cost_per_second": 0},
            "worker_id_number": {**ok, "worker_id": 5},
            "worker_id_null": {**ok, "worker_id": None},
            "worker_id_empty": {**ok, "worker_id": ""},
            "worker_id_slash": {**ok, "worker_id": "../etc/passwd"},
            "worker_id_space": {**ok, "worker_id": "a b"},
            "worker_id_huge": {**ok, "worker_id": "w" * 129},
            "worker_id_very_huge": {**ok, "worker_id": "w" * 500_000},
            "supported_tasks_string": {**ok, "supported_tasks": task_type},
            "supported_tasks_numbers": {**ok, "supported_tasks": [1, 2]},
            "supported_tasks_empty": {**ok, "supported_tasks": []},
            "supported_tasks_empty_name": {**ok, "supported_tasks": [""]},
            "supported_tasks_huge_name": {**ok, "supported_tasks": ["t" * 201]},
            "supported_tasks_too_many": {**ok, "supported_tasks": [f"t{i}" for i in range(501)]},
            "resources_list": {**ok, "resources": []},
            "gpu_info_string": {**ok, "resources": {"gpu_info": "A100"}},
            "vram_string": {**ok, "resources": {"gpu_info": {"model": "A100", "vram_gb": "lots"}}},
            "vram_negative": {**ok, "resources": {"gpu_info": {"model": "A100", "vram_gb": -1}}},
            "gpu_model_huge": {**ok, "resources": {"gpu_info": {"model": "A" * 201}}},
            "cpu_cores_float": {**ok, "resources": {"cpu_cores": 1.5}},
            "cpu_cores_string": {**ok, "resources": {"cpu_cores": "8"}},
            "vram_numeric_string": {**ok, "resources": {"gpu_info": {"model": "A100", "vram_gb": "80"}}},
            "cpu_cores_negative": {**ok, "resources": {"cpu_cores": -1}},
            "max_concurrent_zero": {**ok, "resources": {"max_concurrent_tasks": 0}},
            "max_concurrent_negative": {**ok, "resources": {"max_concurrent_tasks": -5}},
            "models_object": {**ok, "installed_models": {"name": "llama"}},
            "models_strings": {**ok, "installed_models": ["llama"]},
            "model_without_name": {**ok, "installed_models": [{"version": "1"}]},
            "model_name_number": {**ok, "installed_models": [{"name": 7}]},
            "cost_string": {**ok, "cost_per_second": "cheap"},
            "cost_numeric_string": {**ok, "cost_per_second": "0.5"},
            "cost_bool": {**ok, "cost_per_second": True},
            "cost_negative": {**ok, "cost_per_second": -0.01},
            "cost_too_big": {**ok, "cost_per_second": 1e10},
            "hot_cache_string": {**ok, "hot_cache": task_type},
            "hot_cache_numbers": {**ok, "hot_cache": [1]},
            "capabilities_list": {**ok, "capabilities": ["gpu"]},
            "oversized": {**ok, "capabilities": {"blob": "x" * (2 * 1024 * 1024)}},
            "lone_surrogate_id": b'{"worker_id": "w\\ud800", "supported_tasks": ["a"]}',
            "lone_surrogate_task": escaped({**ok, "supported_tasks": ["\ud800"]}),
            "lone_surrogate_key": escaped({**ok, "capabilities": {"\udfff": 1}}),
            "huge_number": b'{"worker_id": "w", "supported_tasks": ["a"], "load": 1e999}',
            "worker_type_number": {**ok, "worker_type": 5},
            "max_concurrent_zero_top": {**ok, "max_concurrent_tasks": 0},
            "cost_per_skill_string": {**ok, "cost_per_skill": {task_type: "cheap"}},
            "cost_per_skill_negative": {**ok, "cost_per_skill": {task_type: -1}},
            "installed_software_list": {**ok, "installed_software": ["python"]},
            "hostname_number": {**ok, "hostname": 5},
            "status_unknown": {**ok, "status": "sleeping"},
        }
    )
    return cases


def test_register_with_bad_bodies_changes_nothing(orchestrator):
    task_type = unique("reg")
    w = worker(orchestrator, task_type, cost_per_second=0.25, hot_cache=[task_type])

    def unchanged():
        workers = {r["worker_id"] for r in _all_workers(orchestrator)}
        assert not workers & {"a b", "../etc/passwd", "w" * 129, "5"}
        return record_of(orchestrator, w.worker_id)

    check_all(w, "POST", "/_worker/workers/register", register_cases(w.worker_id, task_type), unchanged)
    assert record_of(orchestrator, w.worker_id)["supported_tasks"] == [task_type]


def _all_workers(orchestrator) -> list[dict[str, Any]]:
    with orchestrator.client() as http:
        return http.get("/api/v1/workers").json()


# -- heartbeat --------------------------------------------------------------------------------------------

HEARTBEAT_CASES: dict[str, Any] = {
    **MALFORMED,
    **NOT_OBJECTS,
    "zero": b"0",
    "false": b"false",
    "empty_string": b'""',
    "status_unknown": {"status": "sleeping"},
    "status_number": {"status": 5},
    "status_null": {"status": None},
    "status_huge": {"status": "busy" * 100_000},
    "load_negative": {"load": -1},
    "load_string": {"load": "high"},
    "load_numeric_string": {"load": "0.5"},
    "load_bool": {"load": True},
    "load_too_big": {"load": 1e7},
    "load_object": {"load": {"value": 1}},
    "oversized": {"status": "busy", "blob": "x" * (2 * 1024 * 1024)},
    "supported_tasks_string": {"supported_tasks": "a"},
    "supported_tasks_numbers": {"supported_tasks": [1]},
    "hot_cache_lone_surrogate": escaped({"hot_cache": ["\ud800"]}),
    "skill_dependencies_list": {"skill_dependencies": ["a"]},
    "hot_skills_string": {"hot_skills": "a"},
}


def test_heartbeat_with_bad_bodies_changes_nothing(orchestrator):
    w = worker(orchestrator, unique("hb"))
    assert w.heartbeat({"status": "busy", "load": 0.5}).status_code == 200
    check_all(
        w, "PATCH", f"/_worker/workers/{w.worker_id}", HEARTBEAT_CASES, lambda: record_of(orchestrator, w.worker_id)
    )
    record = record_of(orchestrator, w.worker_id)
    assert (record["status"], record["load"], record["reputation"]) == ("busy", 0.5, 1.0)


# -- results ----------------------------------------------------------------------------------------------


def result_cases(task: dict[str, Any], worker_id: str) -> dict[str, Any]:
    ids = {"job_id": task["job_id"], "task_id": task["task_id"], "worker_id": worker_id}
    ok = {**ids, "result": {"status": "success", "data": {"evil": True}}}

    def result(**fields):
        return {**ids, "result": {"status": "failure", **fields}}

    def without(key):
        return {k: v for k, v in ok.items() if k != key}

    return {
        **MALFORMED,
        **NOT_OBJECTS,
        "empty_body": b"",
        "null": b"null",
        "missing_job_id": without("job_id"),
        "missing_task_id": without("task_id"),
        "missing_worker_id": without("worker_id"),
        "missing_result": without("result"),
        "job_id_number": {**ok, "job_id": 5},
        "task_id_null": {**ok, "task_id": None},
        "worker_id_list": {**ok, "worker_id": [worker_id]},
        "job_id_empty": {**ok, "job_id": ""},
        "job_id_huge": {**ok, "job_id": "j" * 101},
        "task_id_huge": {**ok, "task_id": task["task_id"] + "x" * 100_000},
        "result_string": {**ids, "result": "success"},
        "result_list": {**ids, "result": [{"status": "success"}]},
        "result_null": {**ids, "result": None},
        "status_number": {**ids, "result": {"status": 5}},
        "status_empty": {**ids, "result": {"status": ""}},
        "status_huge": {**ids, "result": {"status": "s" * 201}},
        "data_list": {**ids, "result": {"status": "success", "data": [1, 2]}},
        "data_string": {**ids, "result": {"status": "success", "data": "done"}},
        "data_number": {**ids, "result": {"status": "success", "data": -1}},
        "data_bool": {**ids, "result": {"status": "success", "data": True}},
        "error_list": result(error=["boom"]),
        "error_code_number": result(error={"code": 500}),
        "error_message_number": result(error={"code": "TRANSIENT_ERROR", "message": 5}),
        "error_message_huge": result(error={"message": "m" * 10_001}),
        "oversized": {**ids, "result": {"status": "success", "data": {"blob": "x" * (2 * 1024 * 1024)}}},
        "error_code_empty": result(error={"code": ""}),
        "data_lone_surrogate": escaped({**ids, "result": {"status": "success", "data": {"path": "\udcff"}}}),
    }


def test_result_with_bad_bodies_changes_nothing(orchestrator):
    task_type = unique("res")
    w = worker(orchestrator, task_type)
    job_id = queued_job(orchestrator, task_type)
    task = w.poll_until()
    held = view(orchestrator, job_id)
    assert held["worker_id"] == w.worker_id
    check_all(w, "POST", "/_worker/tasks/result", result_cases(task, w.worker_id), lambda: view(orchestrator, job_id))
    # the lease survived every bad request
    assert w.result(task, status="success", data={"ok": 1}).json() == {"status": "result_accepted_success"}
    done = orchestrator.wait(job_id)
    assert done["status"] == "finished" and "evil" not in done["state_history"]


def test_result_for_unknown_ids(orchestrator):
    task_type = unique("ids")
    w = worker(orchestrator, task_type)
    job_id = queued_job(orchestrator, task_type)
    task = w.poll_until()
    before = view(orchestrator, job_id)
    unknown_job = {**task, "job_id": str(uuid.uuid4())}
    is_json_error(w.result(unknown_job, status="success"), 404)
    unknown_task = {**task, "task_id": str(uuid.uuid4())}
    is_json_error(w.result(unknown_task, status="success", data={"evil": True}), 409)
    assert view(orchestrator, job_id) == before


# -- wrong method -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/_worker/workers/register"),
        ("GET", "/_worker/tasks/result"),
        ("POST", "/_worker/workers/{id}/tasks/next"),
        ("DELETE", "/_worker/workers/{id}"),
    ],
)
def test_wrong_method_is_405_json(orchestrator, method, path):
    w = worker(orchestrator, unique("m"))
    is_json_error(w.http.request(method, path.format(id=w.worker_id)), 405)


# -- credentials ------------------------------------------------------------------------------------------


@pytest.fixture
def held(orchestrator):
    """A job whose task is held by a registered worker: (job id, worker, task)."""
    task_type = unique("auth")
    w = worker(orchestrator, task_type)
    job_id = queued_job(orchestrator, task_type)
    task = w.poll_until()
    return job_id, w, task


@pytest.mark.parametrize(
    "token",
    [None, "", "wrong-token", GLOBAL_WORKER_TOKEN + "x", GLOBAL_WORKER_TOKEN.upper(), suite_app.CLIENT_A],
    ids=["missing", "empty", "wrong", "suffix", "case", "client_token"],
)
def test_bad_worker_token_is_401_everywhere(orchestrator, held, token):
    job_id, w, task = held
    before_job, before_worker = view(orchestrator, job_id), record_of(orchestrator, w.worker_id)
    statuses = every_route(orchestrator.base, w.worker_id, token, task)
    assert statuses == dict.fromkeys(statuses, 401)
    assert view(orchestrator, job_id) == before_job
    assert record_of(orchestrator, w.worker_id) == before_worker


@pytest.mark.parametrize(
    ("worker_id", "token"),
    [
        ("cpu-worker-02", GPU_TOKEN),  # another worker's individual token
        ("gpu-worker-01", CPU_TOKEN),
        ("not-in-workers-toml", GPU_TOKEN),  # an individual token used for an id without one
    ],
)
def test_another_workers_individual_token_is_403(orchestrator, held, worker_id, token):
    job_id, _, task = held
    before = view(orchestrator, job_id)
    statuses = every_route(orchestrator.base, worker_id, token, task)
    assert statuses == dict.fromkeys(statuses, 403)
    assert view(orchestrator, job_id) == before


def test_acting_as_another_worker_otherwise_is_401(orchestrator, held):
    """The global token is not valid for a worker with an individual token, nor a worker's token for another."""
    job_id, w, task = held
    before = view(orchestrator, job_id)
    statuses = every_route(orchestrator.base, "gpu-worker-01", GLOBAL_WORKER_TOKEN, task)
    assert statuses == dict.fromkeys(statuses, 401)
    # the holder's lease cannot be used by a worker pretending to be it with a wrong token
    statuses = every_route(orchestrator.base, w.worker_id, CPU_TOKEN[:-1], task)
    assert statuses == dict.fromkeys(statuses, 401)
    assert view(orchestrator, job_id) == before


def test_heartbeat_of_unknown_worker_is_404(orchestrator):
    worker_id = unique("ghost")
    with httpx.Client(base_url=orchestrator.base, headers={"X-Worker-Token": GLOBAL_WORKER_TOKEN}) as http:
        is_json_error(http.patch(f"/_worker/workers/{worker_id}"), 404)
        is_json_error(http.patch(f"/_worker/workers/{worker_id}", json={"status": "busy", "load": 1}), 404)
    assert record_of(orchestrator, worker_id) is None  # a heartbeat does not register


def test_poll_of_unregistered_worker_is_404_at_once(orchestrator):
    worker_id = unique("ghost")
    with httpx.Client(base_url=orchestrator.base, headers={"X-Worker-Token": GLOBAL_WORKER_TOKEN}) as http:
        is_json_error(http.get(f"/_worker/workers/{worker_id}/tasks/next"), 404)  # a long-poll would end in 204
