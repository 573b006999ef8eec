"""Tracing (SPEC §6): one trace per job across the API process and the Celery worker process.

Both processes write their spans as JSON lines to one file (`AVTOMATIKA_OTEL_TEST_EXPORTER=file:PATH`, the
test-only exporter); the test reads them back and follows one job's trace id: the create request, every step
task (their messages are pushed by the commit script, so they carry the context themselves), the worker task's
`tracing_context`, the result request, and a native task published through Celery."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Orchestrator
from tests.services import (
    BIN,
    GLOBAL_WORKER_TOKEN,
    Process,
    free_port,
    service_env,
    start_api,
    start_celery_worker,
    wait_for_status,
    wait_until,
)
from tests.workers.http_worker import HttpWorker, unique


@pytest.fixture
def traced(redis_url: str, tmp_path: Path) -> Iterator[tuple[Orchestrator, Path, list]]:
    spans = tmp_path / "spans.jsonl"
    env = service_env(
        AVTOMATIKA_APP="tests.apps.suite_app:engine",
        REDIS_URL=redis_url + "/7",
        REDIS_KEY_PREFIX="tracing",
        CLIENT_TOKEN="t" * 32,
        AVTOMATIKA_OTEL_TEST_EXPORTER=f"file:{spans}",
    )
    worker = start_celery_worker(env)
    api, base = start_api(env)
    processes = [worker, api]
    try:
        yield Orchestrator("redis", base), spans, processes
    finally:
        api.stop()
        worker.stop()


def read_spans(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def trace_of(traceparent: str) -> str:
    return "0x" + traceparent.split("-")[1]


@pytest.mark.redis
def test_one_trace_per_job_across_api_and_celery_processes(traced) -> None:
    orchestrator, path, _ = traced
    task_type = unique("traced")
    worker = HttpWorker(orchestrator.base, supported_tasks=[task_type])
    assert worker.register().status_code == 200
    job_id = orchestrator.create("/api/v1/jobs/tasks", {"task_type": task_type})
    task = worker.poll_until(10)
    assert task["job_id"] == job_id
    traceparent = task["tracing_context"]["traceparent"]
    trace_id = trace_of(traceparent)
    assert worker.result(task, status="success", data={"ok": True}).status_code == 200
    assert orchestrator.wait(job_id)["status"] == "finished"

    def whole_trace() -> list[dict]:
        mine = [s for s in read_spans(path) if s["context"]["trace_id"] == trace_id]
        steps = [s for s in mine if s["name"] == "run/avtomatika.step"]
        return mine if len(steps) >= 2 and any(s["name"] == "avtomatika.result" for s in mine) else []

    spans = wait_until(whole_trace, 20, what="the job's spans")
    roles = {s["resource"]["attributes"]["avtomatika.role"] for s in spans}
    pids = {s["resource"]["attributes"]["process.pid"] for s in spans}
    assert roles == {"api", "worker"} and len(pids) >= 2
    names = [s["name"] for s in spans]
    created = [s for s in spans if s["kind"] == "SpanKind.SERVER" and s["name"] == "POST /api/v1/jobs/tasks"]
    assert len(created) == 1 and created[0]["parent_id"] is None, names  # the create request is the root
    steps = [s for s in spans if s["name"] == "run/avtomatika.step"]
    assert all(s["resource"]["attributes"]["avtomatika.role"] == "worker" for s in steps)
    assert {s["attributes"].get("celery.task_name", "avtomatika.step") for s in steps} == {"avtomatika.step"}
    result = next(s for s in spans if s["name"] == "avtomatika.result")
    assert result["attributes"]["job_id"] == job_id
    # every span hangs off another span of the same trace: nothing started a trace of its own
    ids = {s["context"]["span_id"] for s in spans}
    assert all(s["parent_id"] in ids for s in spans if s is not created[0]), names


@pytest.mark.redis
def test_an_sdk_worker_sends_its_result_request_in_the_jobs_trace(traced) -> None:
    """The SDK sends the task's `traceparent` with its result: the result request's server span (the Flask
    instrumentation's) is in the job's trace, under the worker task's context, not the root of a trace of its own."""
    orchestrator, path, processes = traced
    task_type = unique("sdktraced")
    env = service_env(
        TRACED_TASK_TYPE=task_type,
        AVTOMATIKA_ORCHESTRATOR_URL=orchestrator.base,
        AVTOMATIKA_WORKER_TOKEN=GLOBAL_WORKER_TOKEN,
    )
    sdk = Process([str(BIN / "avtomatika"), "worker", "tests.observability.traced_worker:worker"], env, "traced-sdk")
    try:
        job_id = orchestrator.create("/api/v1/jobs/tasks", {"task_type": task_type})
        try:
            assert orchestrator.wait(job_id, timeout=30)["status"] == "finished"
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nthe SDK worker said:\n{sdk.output()}") from None

        def result_request() -> list[dict]:
            spans = read_spans(path)
            results = [s for s in spans if s["name"] == "avtomatika.result" and s["attributes"].get("job_id") == job_id]
            if not results:
                return []
            trace_id = results[0]["context"]["trace_id"]
            mine = [s for s in spans if s["context"]["trace_id"] == trace_id]
            return mine if any(s["name"] == "POST /_worker/tasks/result" for s in mine) else []

        spans = wait_until(result_request, 20, what="the result request's span in the job's trace")
    finally:
        sdk.stop()
    request = next(s for s in spans if s["name"] == "POST /_worker/tasks/result")
    assert request["kind"] == "SpanKind.SERVER" and request["parent_id"] is not None
    created = [s for s in spans if s["name"] == "POST /api/v1/jobs/tasks"]
    assert len(created) == 1 and created[0]["parent_id"] is None  # the same trace the create request began


@pytest.mark.redis
def test_native_tasks_and_their_steps_share_the_create_request_trace(traced) -> None:
    orchestrator, path, _ = traced
    job_id = orchestrator.create("/api/v1/jobs/native", {"value": 2})
    assert orchestrator.wait(job_id)["status"] == "finished"

    def whole_trace() -> list[dict]:
        spans = read_spans(path)
        roots = [s for s in spans if s["name"] == "POST /api/v1/jobs/native"]
        if not roots:
            return []
        mine = [s for s in spans if s["context"]["trace_id"] == roots[-1]["context"]["trace_id"]]
        return mine if any(s["name"] == "run/avtomatika.native" for s in mine) else []

    spans = wait_until(whole_trace, 20, what="the native job's spans")
    names = {s["name"] for s in spans}
    # the native task's message is pushed by the commit that grants its lease (no apply_async span): it carries
    # the trace context itself, as step messages do, so its run is in the create request's trace
    assert {"run/avtomatika.step", "run/avtomatika.native"} <= names


def test_nothing_is_traced_or_printed_without_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    from avtomatika import tracing
    from avtomatika.config import Config

    config = Config({})
    assert not tracing.enabled(config)
    assert not tracing.configure(config, "api")
    assert tracing.current_context() == {}
    with tracing.span("avtomatika.result", {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}):
        pass
    assert capsys.readouterr() == ("", "")


def test_the_embedded_default_traces_a_job_as_one_trace(tmp_path: Path) -> None:
    spans_file = tmp_path / "spans.jsonl"
    port = free_port()
    env = service_env(
        API_HOST="127.0.0.1",
        API_PORT=str(port),
        CLIENT_TOKEN="e" * 32,
        AVTOMATIKA_OTEL_TEST_EXPORTER=f"file:{spans_file}",
    )
    process = Process([str(BIN / "avtomatika"), "run", "--app", "tests.apps.suite_app:engine"], env, "embedded")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_status(process, base)
        orchestrator = Orchestrator("embedded", base)
        job_id = orchestrator.create("/api/v1/jobs/native", {"value": 3})
        assert orchestrator.wait(job_id)["status"] == "finished"

        def whole_trace() -> list[dict]:
            spans = read_spans(spans_file)
            roots = [s for s in spans if s["name"] == "POST /api/v1/jobs/native"]
            if not roots:
                return []
            mine = [s for s in spans if s["context"]["trace_id"] == roots[0]["context"]["trace_id"]]
            names = {s["name"] for s in mine}
            return mine if {"run/avtomatika.step", "run/avtomatika.native"} <= names else []

        spans = wait_until(whole_trace, 20, what="the job's spans")
    finally:
        process.stop()
    assert {s["resource"]["attributes"]["avtomatika.role"] for s in spans} == {"embedded"}
    ids = {s["context"]["span_id"] for s in spans}
    assert sum(1 for s in spans if s["parent_id"] not in ids) == 1  # one root: the create request
    assert "Traceback" not in process.output()
