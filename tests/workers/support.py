"""Helpers of the worker-protocol tests: job views, waiting for a status, long-polls running in threads."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

import httpx
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.apps import suite_app
from tests.services import wait_until
from tests.workers.http_worker import HttpWorker, unique

POLL_TIMEOUT = 2.0  # WORKER_POLL_TIMEOUT_SECONDS of the session's orchestrators (`orchestrator`)
A100 = {"gpu_info": {"model": "NVIDIA A100-SXM4", "vram_gb": 80}}  # resources of a worker with a big GPU
LONG_POLL_TIMEOUT = 10  # that of the `long_poll_*` orchestrators (tests of which blocked poll a dispatch wakes)


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

    Use it with an orchestrator holding polls for `LONG_POLL_TIMEOUT` (the `long_poll_*` fixtures): `arm()`
    makes sure each worker has a poll blocked on the server (among the storage's pollers) with at least
    `MARGIN` seconds left, so on a loaded machine a dispatch has seconds to be decided before any poll
    times out. `woken()` waits for the woken poll until the first poll would time out. The polls that stay
    blocked are not waited for: `close()` checks that none of them got a task and leaves each to end at its
    timeout in its own daemon thread (their task types are the test's own, so nothing else wakes them).
    """

    MARGIN = 6.0

    def __init__(
        self, workers: list[HttpWorker], storage: Any, task_type: str, poll_timeout: float = LONG_POLL_TIMEOUT
    ) -> None:
        self.workers = {w.worker_id: w for w in workers}
        self.storage = storage
        self.task_type = task_type
        self.poll_timeout = poll_timeout
        self.polls: dict[str, tuple[Future, float]] = {}  # worker id -> (its open poll, monotonic start)

    def _start(self, worker_id: str) -> None:
        w, future = self.workers[worker_id], Future()

        def poll() -> None:
            # A client of its own: the worker's client is closed after the test, maybe before this poll ends.
            headers = {"X-Worker-Token": w.token}
            try:
                with httpx.Client(base_url=w.base, headers=headers, timeout=self.poll_timeout + 30) as http:
                    answer = http.get(f"/_worker/workers/{worker_id}/tasks/next")
                task = answer.json() if answer.status_code == 200 else None
                future.set_result((answer.status_code, task, time.monotonic()))
            except BaseException as exc:  # noqa: BLE001 - handed to whoever looks at the future
                future.set_exception(exc)

        self.polls[worker_id] = (future, time.monotonic())
        threading.Thread(target=poll, name=f"poll-{worker_id}", daemon=True).start()

    def arm(self) -> None:
        for worker_id in self.workers:
            poll = self.polls.get(worker_id)
            if poll is not None and not poll[0].done() and time.monotonic() - poll[1] > self.poll_timeout - self.MARGIN:
                status, task, _ = poll[0].result(timeout=self.poll_timeout + 30)  # too little left: let it end
                assert status == 204, f"{worker_id} got a task it was not woken for: {task}"
            poll = self.polls.get(worker_id)
            if poll is None or poll[0].done():
                self._start(worker_id)
        wait_until(
            lambda: (
                {p.partition("|")[0] for p in self.storage.pollers(self.task_type, time.time())} >= set(self.workers)
            ),
            10,
            0.005,
            what="every worker to block in its long-poll",
        )

    def woken(self) -> tuple[str, dict[str, Any], float]:
        """The one worker whose poll a dispatch woke: (worker id, task, monotonic time it returned).

        Waits until the first open poll would time out. The winner must have returned before its own poll's
        timeout (a poll that is not woken claims a waiting task only when its timeout is up)."""
        pending = {future: worker_id for worker_id, (future, _) in self.polls.items()}
        first_timeout = min(started for _, started in self.polls.values()) + self.poll_timeout
        done, _ = wait(pending, timeout=max(first_timeout - time.monotonic(), 0), return_when=FIRST_COMPLETED)
        assert done, f"no blocked poll was woken within the poll timeout ({self.poll_timeout}s)"
        results = {pending[f]: f.result() for f in done}
        winners = {worker_id: r for worker_id, r in results.items() if r[0] == 200}
        assert len(winners) == 1, f"one poll must be woken with the task, and none time out first: {results}"
        ((worker_id, (_, task, returned)),) = winners.items()
        assert returned - self.polls[worker_id][1] < self.poll_timeout, "it got the task when its poll timed out"
        for done_id in results:
            del self.polls[done_id]
        return worker_id, task, returned

    def blocked(self) -> set[str]:
        """The workers whose polls are still open."""
        return {worker_id for worker_id, (future, _) in self.polls.items() if not future.done()}

    def close(self) -> None:
        """Check that no open poll got a task (each still blocks, or ended empty at its timeout); the blocked
        ones are left to end at their timeout."""
        for worker_id, (future, _) in self.polls.items():
            if future.done():
                status, task, _ = future.result()
                assert status == 204, f"{worker_id} got a task it was not woken for: {task}"
        self.polls.clear()


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
