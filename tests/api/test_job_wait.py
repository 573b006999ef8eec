"""`GET /api/v1/jobs/{id}?wait=N`: a long-poll for the end of a job instead of polling."""

from __future__ import annotations

import time

import pytest

from tests.workers.http_worker import unique


def test_wait_returns_when_the_job_ends(orchestrator, tmp_path):
    job_id = orchestrator.create("/api/v1/jobs/slow", {"sleep": 1.0, "log": str(tmp_path / "runs.log")})
    started = time.monotonic()
    with orchestrator.client() as http:
        view = http.get(f"/api/v1/jobs/{job_id}", params={"wait": 20}, timeout=30).json()
    elapsed = time.monotonic() - started
    assert view["status"] == "finished"
    assert 0.5 < elapsed < 20  # woken by the end, not by the 20 s limit (speed is the benchmarks' business)


def test_two_clients_waiting_for_one_job_are_both_woken(orchestrator, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    job_id = orchestrator.create("/api/v1/jobs/slow", {"sleep": 1.0, "log": str(tmp_path / "runs.log")})

    def wait() -> str:
        with orchestrator.client() as http:
            return str(http.get(f"/api/v1/jobs/{job_id}", params={"wait": 20}, timeout=30).json()["status"])

    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(lambda _: wait(), range(2))) == ["finished", "finished"]
    assert time.monotonic() - started < 20  # woken by the end, not by the limit


def test_wait_times_out_with_the_current_view(orchestrator):
    job_id = orchestrator.create("/api/v1/jobs/tasks", {"task_type": unique("nobody")})
    started = time.monotonic()
    with orchestrator.client() as http:
        view = http.get(f"/api/v1/jobs/{job_id}", params={"wait": 1}).json()
    assert view["status"] in ("pending", "running", "waiting_for_worker")
    assert time.monotonic() - started > 0.9  # it did wait its second


def test_wait_on_an_ended_job_answers_at_once(orchestrator):
    job_id = orchestrator.create("/api/v1/jobs/linear", {"value": 1})
    orchestrator.wait(job_id)
    started = time.monotonic()
    with orchestrator.client() as http:
        assert http.get(f"/api/v1/jobs/{job_id}", params={"wait": 30}).json()["status"] == "finished"
    assert time.monotonic() - started < 30  # not held until the 30 s limit


@pytest.mark.parametrize("wait", ["-1", "61", "soon", "nan"])
def test_bad_wait_is_400(orchestrator, wait):
    job_id = orchestrator.create("/api/v1/jobs/linear", {"value": 1})
    with orchestrator.client() as http:
        answer = http.get(f"/api/v1/jobs/{job_id}", params={"wait": wait})
    assert answer.status_code == 400 and "wait" in answer.json()["error"]
