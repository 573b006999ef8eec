"""A bare HTTP worker for protocol tests: every call is one real HTTP request, nothing hidden."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.services import GLOBAL_WORKER_TOKEN


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class HttpWorker:
    def __init__(self, base: str, worker_id: str | None = None, token: str = GLOBAL_WORKER_TOKEN, **record: Any):
        self.base = base
        self.worker_id = worker_id or unique("w")
        self.token = token
        self.record = {"worker_id": self.worker_id, "supported_tasks": ["echo"], **record}
        self.http = httpx.Client(base_url=base, headers={"X-Worker-Token": token}, timeout=30)

    def register(self) -> httpx.Response:
        answer = self.http.post("/_worker/workers/register", json=self.record)
        return answer

    def poll(self) -> dict[str, Any] | None:
        answer = self.http.get(f"/_worker/workers/{self.worker_id}/tasks/next")
        assert answer.status_code in (200, 204), answer.text
        return answer.json() if answer.status_code == 200 else None

    def poll_until(self, attempts: int = 5) -> dict[str, Any]:
        for _ in range(attempts):
            task = self.poll()
            if task is not None:
                return task
        raise AssertionError(f"{self.worker_id} got no task")

    def result(self, task: dict[str, Any], **result: Any) -> httpx.Response:
        body = {"job_id": task["job_id"], "task_id": task["task_id"], "worker_id": self.worker_id, "result": result}
        return self.http.post("/_worker/tasks/result", json=body)

    def heartbeat(self, body: dict[str, Any] | None = None) -> httpx.Response:
        if body is None:
            return self.http.patch(f"/_worker/workers/{self.worker_id}")
        return self.http.patch(f"/_worker/workers/{self.worker_id}", json=body)

    def close(self) -> None:
        self.http.close()
