"""Helpers of the worker-protocol tests: job views, waiting for a status, long-polls running in threads."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import httpx
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.apps import suite_app
from tests.services import wait_until
from tests.workers.http_worker import HttpWorker, unique

POLL_TIMEOUT = 2.0  # WORKER_POLL_TIMEOUT_SECONDS of every orchestrator in the tests


def is_json_error(answer: Any, status: int) -> dict[str, Any]:
    """Assert a JSON error answer `{"error", "details"}` with this status; returns the body."""
    assert answer.status_code == status, (answer.status_code, answer.text)
    body = answer.json()
    assert set(body) == {"error", "details"}, body
    assert isinstance(body["error"], str) and body["error"]
    return body


def view(orchestrator: Any, job_id: str, token: str = suite_app.CLIENT_A) -> dict[str, Any]:
    with orchestrator.client(token) as http:
        answer = http.get(f"/api/v1/jobs/{job_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def wait_status(orchestrator: Any, job_id: str, status: str, timeout: float = 15) -> dict[str, Any]:
    """The job view once the job has `status` (fails on another terminal status)."""
    seen: dict[str, Any] = {}

    def reached() -> dict[str, Any] | None:
        seen.update(view(orchestrator, job_id))
        assert seen["status"] not in {"finished", "failed", "cancelled", "quarantined"} - {status}, seen
        return dict(seen) if seen["status"] == status else None

    return wait_until(reached, timeout, 0.02, what=f"job {job_id} to be {status} (last view: {seen})")


def create_task_job(orchestrator: Any, task_type: str, **initial: Any) -> str:
    """A job of blueprint `tasks` dispatching one task of `task_type`."""
    return orchestrator.create("/api/v1/jobs/tasks", {"task_type": task_type, **initial})


def queued_job(orchestrator: Any, task_type: str, **initial: Any) -> str:
    """Create a `tasks` job and wait until its task waits in the queue."""
    job_id = create_task_job(orchestrator, task_type, **initial)
    wait_status(orchestrator, job_id, "waiting_for_worker")
    return job_id


OPEN_WORKERS: list[HttpWorker] = []


def close_workers() -> None:
    """Close the HTTP clients of the workers made by `worker()` (the autouse fixture calls it after each test)."""
    while OPEN_WORKERS:
        OPEN_WORKERS.pop().close()


def worker(orchestrator: Any, task_type: str, worker_id: str | None = None, **record: Any) -> HttpWorker:
    """A registered HTTP worker supporting `task_type`."""
    w = HttpWorker(orchestrator.base, worker_id, supported_tasks=[task_type], **record)
    OPEN_WORKERS.append(w)
    answer = w.register()
    assert answer.status_code == 200 and answer.json() == {"status": "registered"}, answer.text
    return w


def raw_poll(w: HttpWorker) -> tuple[int, dict[str, Any] | None, float]:
    """One long-poll: (status code, task or None, monotonic time it returned)."""
    answer = w.http.get(f"/_worker/workers/{w.worker_id}/tasks/next")
    assert answer.status_code in (200, 204), answer.text
    return answer.status_code, (answer.json() if answer.status_code == 200 else None), time.monotonic()


class PollGroup:
    """Workers long-polling in threads at the same moment, to see whose blocked poll a dispatch wakes.

    `arm()` makes sure each worker has a poll that is blocked on the server (it is among the storage's
    pollers) with at least `MARGIN` seconds left, so no poll times out while a dispatch is being decided.
    """

    MARGIN = 0.9

    def __init__(self, workers: list[HttpWorker], storage: Any, task_type: str) -> None:
        self.workers = {w.worker_id: w for w in workers}
        self.storage = storage
        self.task_type = task_type
        self.pool = ThreadPoolExecutor(len(workers))
        self.polls: dict[str, tuple[Future, float]] = {}

    def _start(self, worker_id: str) -> None:
        self.polls[worker_id] = (self.pool.submit(raw_poll, self.workers[worker_id]), time.monotonic())

    def arm(self) -> None:
        for worker_id in self.workers:
            poll = self.polls.get(worker_id)
            if poll is not None and not poll[0].done() and time.monotonic() - poll[1] > POLL_TIMEOUT - self.MARGIN:
                status, task, _ = poll[0].result(timeout=POLL_TIMEOUT + 5)
                assert status == 204, f"{worker_id} got a task it was not woken for: {task}"
            poll = self.polls.get(worker_id)
            if poll is None or poll[0].done():
                self._start(worker_id)
        wait_until(
            lambda: (
                {p.partition("|")[0] for p in self.storage.pollers(self.task_type, time.time())} >= set(self.workers)
            ),
            5,
            0.005,
            what="every worker to block in its long-poll",
        )

    def woken(self, timeout: float = POLL_TIMEOUT - MARGIN) -> tuple[str, dict[str, Any], float]:
        """The one worker whose poll returned a task: (worker id, task, monotonic time it returned)."""
        pending = {future: worker_id for worker_id, (future, _) in self.polls.items()}
        done, _ = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
        assert done, f"no blocked poll was woken within {timeout}s"
        results = {pending[f]: f.result() for f in done}
        winners = {worker_id: r for worker_id, r in results.items() if r[0] == 200}
        assert len(winners) == 1, results
        for worker_id in results:
            del self.polls[worker_id]
        ((worker_id, (_, task, returned)),) = winners.items()
        return worker_id, task, returned

    def close(self) -> dict[str, int]:
        """Wait for the remaining polls; returns their status codes."""
        statuses = {
            worker_id: future.result(timeout=POLL_TIMEOUT + 5)[0] for worker_id, (future, _) in self.polls.items()
        }
        self.polls.clear()
        self.pool.shutdown(wait=True)
        return statuses


def record_of(orchestrator: Any, worker_id: str) -> dict[str, Any] | None:
    """The worker as `GET /api/v1/workers` shows it, or None when it is not listed."""
    with orchestrator.client() as http:
        answer = http.get("/api/v1/workers")
    assert answer.status_code == 200, answer.text
    found = [w for w in answer.json() if w["worker_id"] == worker_id]
    return found[0] if found else None


def ws_url(base: str, worker_id: str) -> str:
    return base.replace("http://", "ws://", 1) + f"/_worker/ws/{worker_id}"


def ws_status(base: str, worker_id: str, token: str | None) -> int:
    """101 when the WebSocket handshake succeeds, else the HTTP status that refused it."""
    headers = {"X-Worker-Token": token} if token is not None else {}
    try:
        with connect(ws_url(base, worker_id), additional_headers=headers, open_timeout=10):
            return 101
    except InvalidStatus as refused:
        return int(refused.response.status_code)


def every_route(base: str, worker_id: str, token: str | None, task: dict[str, Any] | None = None) -> dict[str, int]:
    """The status of every worker route acting as `worker_id` with `token` (None: no header).

    Errors must be JSON `{"error", "details"}`. Without `task` the result names an unknown job (404 once
    the worker is let in). A poll that is let in waits for the poll timeout when no task is queued.
    """
    task = task or {"job_id": str(uuid.uuid4()), "task_id": str(uuid.uuid4())}
    headers = {"X-Worker-Token": token} if token is not None else {}
    body = {
        "job_id": task["job_id"],
        "task_id": task["task_id"],
        "worker_id": worker_id,
        "result": {"status": "success"},
    }
    with httpx.Client(base_url=base, headers=headers, timeout=10) as http:
        answers = {
            "register": http.post("/_worker/workers/register", json={"worker_id": worker_id, "supported_tasks": ["x"]}),
            "heartbeat": http.patch(f"/_worker/workers/{worker_id}"),
            "heartbeat_body": http.patch(f"/_worker/workers/{worker_id}", json={"status": "busy"}),
            "poll": http.get(f"/_worker/workers/{worker_id}/tasks/next"),
            "result": http.post("/_worker/tasks/result", json=body),
        }
    statuses = {}
    for name, answer in answers.items():
        statuses[name] = answer.status_code
        if answer.status_code >= 400:
            is_json_error(answer, answer.status_code)
    statuses["websocket"] = ws_status(base, worker_id, token)
    return statuses


__all__ = ["HttpWorker", "unique"]
