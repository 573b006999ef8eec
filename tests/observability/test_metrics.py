"""`/_public/metrics` after a known workload, in the production topology: two gunicorn API processes (with
deploy/gunicorn.conf.py and PROMETHEUS_MULTIPROC_DIR) and one Celery worker process, on a real Redis. The
Prometheus text is parsed with prometheus_client's own parser."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.apps import suite_app
from tests.conftest import Orchestrator
from tests.services import ROOT, service_env, start_api, start_celery_worker, wait_until

LINEAR_JOBS = 6
LINEAR_STEPS = ("start", "prepare", "process", "publish")


@dataclass
class Samples:
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float]

    def get(self, name: str, **labels: str) -> float:
        """The sum of every sample of `name` whose labels include `labels`."""
        wanted = set(labels.items())
        return sum(value for (sample, have), value in self.values.items() if sample == name and wanted <= set(have))


def scrape(base: str) -> Samples:
    answer = httpx.get(base + "/_public/metrics", timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/plain")
    values = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in values, f"{key} appears twice"
            values[key] = sample.value
    return Samples(values)


@pytest.fixture
def production(redis_url: str, tmp_path: Path) -> Iterator[tuple[Orchestrator, Path]]:
    multiproc = tmp_path / "prometheus"
    env = service_env(
        AVTOMATIKA_APP="tests.apps.suite_app:engine",
        REDIS_URL=redis_url + "/5",
        REDIS_KEY_PREFIX="metrics",
        CLIENT_TOKEN="m" * 32,
        PROMETHEUS_MULTIPROC_DIR=str(multiproc),
        JOB_MAX_RETRIES="1",
    )
    worker = start_celery_worker(env)
    api, base = start_api(env, workers=2, config=str(ROOT / "deploy/gunicorn.conf.py"))
    try:
        yield Orchestrator("redis", base), multiproc
    finally:
        api.stop()
        worker.stop()


@pytest.mark.redis
def test_metrics_add_up_across_api_and_celery_processes(production: tuple[Orchestrator, Path]) -> None:
    orchestrator, multiproc = production
    linear = [orchestrator.create("/api/v1/jobs/linear", {"n": i}) for i in range(LINEAR_JOBS)]
    native = orchestrator.create("/api/v1/jobs/native", {"value": 4})
    flaky = orchestrator.create("/api/v1/jobs/flaky", {})
    for job_id in linear:
        assert orchestrator.wait(job_id)["status"] == "finished"
    assert orchestrator.wait(native)["status"] == "finished"
    assert orchestrator.wait(flaky)["status"] in ("failed", "quarantined")
    flaky_end = orchestrator.wait(flaky)["status"]  # status reads are not counted exactly: `wait` polls
    creates = LINEAR_JOBS + 2

    def mismatches(samples: Samples) -> list[str]:
        expected = {
            ("orchestrator_jobs_total", ("blueprint", "linear")): LINEAR_JOBS,
            ("orchestrator_jobs_total", ("blueprint", "native")): 1,
            ("orchestrator_jobs_finished_total", ("blueprint", "linear")): LINEAR_JOBS,
            ("orchestrator_jobs_finished_total", ("blueprint", "native")): 1,
            (f"orchestrator_jobs_{flaky_end}_total", ("blueprint", "flaky")): 1,
            ("orchestrator_jobs_finished_total", ("blueprint", "flaky")): 0,
            ("orchestrator_tasks_dispatched_total", ("task_type", "double")): 1,
            ("orchestrator_task_duration_seconds_count", ("task_type", "double")): 1,
            ("orchestrator_active_workers",): 0,
            ("orchestrator_history_backlog",): 0,
        }
        for state in LINEAR_STEPS:  # counted where the steps ran: in the Celery worker process
            expected[("orchestrator_step_duration_seconds_count", ("blueprint", "linear"), ("state", state))] = (
                LINEAR_JOBS
            )
            key = (
                "orchestrator_step_duration_seconds_bucket",
                ("blueprint", "linear"),
                ("state", state),
                ("le", "+Inf"),
            )
            expected[key] = LINEAR_JOBS
        job_durations = ("orchestrator_job_duration_seconds_count", ("blueprint", "linear"), ("status", "finished"))
        expected[job_durations] = LINEAR_JOBS
        wrong = []
        for (name, *labels), value in expected.items():
            got = samples.get(name, **dict(labels))
            if got != value:
                wrong.append(f"{name}{labels}: {got} != {value}")
        if samples.get("orchestrator_step_errors_total", blueprint="flaky", state="start") < 1:
            wrong.append("no step error of flaky")
        # HTTP metrics by route (never by path: job ids are not labels)
        created = sum(
            samples.get(
                "flask_http_request_duration_seconds_count", method="POST", status="202", url_rule=f"/api/v1/jobs/{n}"
            )
            for n in ("linear", "native", "flaky")
        )
        if created != creates or samples.get("flask_http_request_total", method="POST", status="202") != creates:
            wrong.append(f"HTTP creates: {created} != {creates}")
        if any("/api/v1/jobs/" + linear[0] in str(labels) for _, labels in samples.values):
            wrong.append("a job id is a label")
        return wrong

    # Celery processes write their counts within metrics.FLUSH_SECONDS; then every API process answers with
    # the same sums (HTTP counts come from the shared multiprocess directory)
    wait_until(lambda: not mismatches(scrape(orchestrator.base)), 15, what="the expected metrics")
    for _ in range(6):
        assert mismatches(scrape(orchestrator.base)) == []
    pids = {path.name.rsplit("_", 1)[-1] for path in multiproc.glob("*.db")}
    assert len(pids) >= 2, sorted(p.name for p in multiproc.iterdir())


@pytest.mark.redis
def test_queue_depth_and_workers_are_read_from_storage(production: tuple[Orchestrator, Path]) -> None:
    orchestrator, _ = production
    token = suite_app.CLIENT_A
    with orchestrator.client(token) as http:
        for _ in range(3):
            assert http.post("/api/v1/jobs/tasks", json={}).status_code == 202
    headers = {"X-Worker-Token": "global-worker-token-for-tests"}
    registered = httpx.post(
        orchestrator.base + "/_worker/workers/register",
        json={"worker_id": "metrics-worker", "supported_tasks": ["other"]},
        headers=headers,
        timeout=10,
    )
    assert registered.status_code in (200, 201), registered.text

    def settled() -> Samples | None:
        samples = scrape(orchestrator.base)
        registered = samples.get("orchestrator_worker_events_total", event="registered")
        return samples if samples.get("orchestrator_task_queue_length") == 3 and registered == 1 else None

    samples = wait_until(settled, 20, what="three queued tasks and one registration")
    assert samples.get("orchestrator_active_workers") == 1
    assert samples.get("orchestrator_task_queue_length", task_type="echo") == 3


def test_the_embedded_default_serves_metrics_from_one_process(embedded: Orchestrator) -> None:
    before = scrape(embedded.base)
    job_id = embedded.create("/api/v1/jobs/linear", {"n": 1})
    assert embedded.wait(job_id)["status"] == "finished"
    after = scrape(embedded.base)
    for name in ("orchestrator_jobs_total", "orchestrator_jobs_finished_total"):
        assert after.get(name, blueprint="linear") - before.get(name, blueprint="linear") == 1
    assert after.get("orchestrator_step_duration_seconds_count", blueprint="linear", state="prepare") - before.get(
        "orchestrator_step_duration_seconds_count", blueprint="linear", state="prepare"
    ) == (1)
    posted = {"method": "POST", "status": "202", "url_rule": "/api/v1/jobs/linear"}
    assert after.get("flask_http_request_duration_seconds_count", **posted) - before.get(
        "flask_http_request_duration_seconds_count", **posted
    ) == (1)
