"""Flower (`celery -A celery_app flower`) against a real worker started with task events (`-E`): its API lists
the engine's step tasks with their blueprint and state, and answers only with basic auth."""

from __future__ import annotations

import ast
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Orchestrator
from tests.services import BIN, Process, free_port, service_env, start_api, start_celery_worker, wait_until

AUTH = ("ops", "flower-test-password")


@pytest.fixture
def flower(redis_url: str) -> Iterator[tuple[Orchestrator, str]]:
    env = service_env(
        AVTOMATIKA_APP="tests.apps.suite_app:engine",
        REDIS_URL=redis_url + "/6",
        REDIS_KEY_PREFIX="flower",
        CLIENT_TOKEN="f" * 32,
    )
    worker = start_celery_worker(env)  # with -E: the worker sends task events
    api, base = start_api(env)
    port = free_port()
    args = [str(BIN / "celery"), "-A", "celery_app", "flower", "--address=127.0.0.1", f"--port={port}"]
    ui = Process([*args, f"--basic-auth={AUTH[0]}:{AUTH[1]}"], env, "flower")
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert ui.popen.poll() is None, ui.output()
        try:
            return httpx.get(url + "/healthcheck", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(up, 30, what="flower")
        yield Orchestrator("redis", base), url
    finally:
        ui.stop()
        api.stop()
        worker.stop()


@pytest.mark.redis
def test_flower_lists_step_tasks_with_blueprint_and_state(flower: tuple[Orchestrator, str]) -> None:
    orchestrator, url = flower
    assert httpx.get(url + "/api/tasks", timeout=5).status_code == 401

    def steps(job_id: str) -> list[dict]:
        tasks = httpx.get(url + "/api/tasks", params={"taskname": "avtomatika.step"}, auth=AUTH, timeout=5).json()
        mine = [t for t in tasks.values() if t.get("args") and job_id in t["args"]]
        return mine if mine and all(t["state"] == "SUCCESS" for t in mine) else []

    def receiving() -> bool:
        # Task events are a broadcast: Flower sees only what is sent after its event receiver has connected, which
        # is some time after /healthcheck answers. Warm-up jobs run until Flower shows one of them.
        warm_up = orchestrator.create("/api/v1/jobs/linear", {"n": 1})
        assert orchestrator.wait(warm_up)["status"] == "finished"
        return bool(wait_until_or_none(lambda: steps(warm_up), 1.0))

    wait_until(receiving, 30, interval=0, what="Flower to receive task events")
    job_id = orchestrator.create("/api/v1/jobs/linear", {"n": 3})
    assert orchestrator.wait(job_id)["status"] == "finished"
    listed = wait_until(lambda: steps(job_id), 20, what="the job's step tasks in Flower")
    kwargs = [ast.literal_eval(task["kwargs"]) for task in listed]
    assert {k["blueprint"] for k in kwargs} == {"linear"}
    assert "start" in {k["state"] for k in kwargs}
    assert all(task["name"] == "avtomatika.step" for task in listed)


def wait_until_or_none(predicate, timeout: float):  # type: ignore[no-untyped-def]
    try:
        return wait_until(predicate, timeout, what="")
    except AssertionError:
        return None
