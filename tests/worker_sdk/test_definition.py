"""Defining a worker: handlers, registration body, settings, task payloads."""

from __future__ import annotations

import os
import socket
from typing import Any

import pytest

from avtomatika.worker import Task, Worker, WorkerError

from .example_worker import worker as example


def test_registration_body_follows_the_protocol() -> None:
    assert example.registration_body() == {
        "worker_id": "image-worker-1",
        "supported_tasks": ["resize", "classify", "detect_faces", "transcode"],
        "resources": {"gpu_info": {"model": "RTX 4090", "vram_gb": 24}, "cpu_cores": 8, "max_concurrent_tasks": 2},
        "installed_models": [{"name": "sdxl", "version": "1.0"}],
        "cost_per_second": 0.002,
        "hot_cache": ["resize"],
        "capabilities": {"formats": ["png", "jpeg"]},
        "instance_id": example.instance_id,
    }
    host, pid, _ = example.instance_id.split(":")
    assert host == socket.gethostname() and pid == str(os.getpid())


def test_minimal_registration_body_omits_the_cost() -> None:
    worker = Worker("w", "http://x", "t")

    @worker.task()
    def ping() -> dict[str, Any]:
        return {}

    body = worker.registration_body()
    assert body["supported_tasks"] == ["ping"]
    assert body["resources"] == {"max_concurrent_tasks": 1}
    assert "cost_per_second" not in body


def test_handler_registration_errors() -> None:
    worker = Worker("w", "http://x", "t")

    @worker.task("a")
    def a() -> None:
        return None

    with pytest.raises(WorkerError, match="already has a handler"):
        worker.task("a")(a)
    with pytest.raises(WorkerError, match="cannot be injected by name"):

        @worker.task("b")
        def b(*args: Any) -> None:
            return None

    with pytest.raises(WorkerError, match="non-empty string"):
        worker.task("")(a)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"worker_id": ""},
        {"token": ""},
        {"concurrency": 0},
        {"heartbeat_interval": 0},
        {"orchestrator_urls": []},
        {"shutdown_grace_period": -1},
    ],
)
def test_invalid_settings_are_refused(kwargs: dict[str, Any]) -> None:
    settings: dict[str, Any] = {"worker_id": "w", "orchestrator_urls": "http://x", "token": "t", **kwargs}
    with pytest.raises(WorkerError):
        Worker(**settings)


def test_configure_connection_replaces_urls_and_token() -> None:
    worker = Worker("w", "http://x", "t")
    worker.configure_connection(orchestrator_urls=["http://a", "http://b"], token="other")
    assert worker.urls.urls == ("http://a", "http://b")
    assert "other" not in repr(worker)


def test_task_payload_parsing() -> None:
    task = Task.from_payload(
        {"job_id": "j", "task_id": "t", "type": "x", "params": None, "priority": 2, "deadline": 5, "attempt": 2}
    )
    assert (task.params, task.priority, task.deadline, task.attempt) == ({}, 2.0, 5.0, 2)
    with pytest.raises(ValueError, match="task_id"):
        Task.from_payload({"job_id": "j", "type": "x"})
