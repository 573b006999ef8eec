"""Random hostile requests on every route: never a 5xx, every error is JSON (bounded, seeded)."""

from __future__ import annotations

import json
import random
import string
import time

from tests.services import GLOBAL_WORKER_TOKEN

KEYS = [
    "worker_id", "job_id", "task_id", "result", "status", "data", "error", "code", "message", "supported_tasks",
    "resources", "gpu_info", "vram_gb", "initial_data", "webhook_url", "dispatch_timeout", "idempotency_key",
    "load", "event", "progress",
]  # fmt: skip
ROUTES = [
    ("POST", "/api/v1/jobs/linear"),
    ("POST", "/api/v1/jobs/tasks"),
    ("GET", "/api/v1/jobs/{id}"),
    ("GET", "/api/v1/jobs/{id}?wait=0.01"),
    ("POST", "/api/v1/jobs/{id}/cancel"),
    ("POST", "/_worker/workers/register"),
    ("PATCH", "/_worker/workers/{worker}"),
    ("POST", "/_worker/tasks/result"),
    ("GET", "/api/v1/blueprints/linear/graph"),
    ("GET", "/api/v1/workers"),
]


def _value(rnd: random.Random, depth: int = 0):
    choices = [
        lambda: None,
        lambda: rnd.choice([True, False]),
        lambda: rnd.randint(-(10**20), 10**20),
        lambda: rnd.random() * 1e6,
        lambda: "".join(rnd.choices(string.printable, k=rnd.randint(0, 30))),
        lambda: "x" * rnd.randint(0, 3000),
        lambda: [_value(rnd, depth + 1) for _ in range(rnd.randint(0, 4))],
        lambda: {rnd.choice(KEYS): _value(rnd, depth + 1) for _ in range(rnd.randint(0, 5))},
        lambda: {"status": "failure", "error": {"code": _value(rnd, depth + 1)}},
    ]
    return choices[rnd.randint(0, len(choices) - 1 if depth < 3 else 5)]()


def test_random_requests_never_get_a_5xx(orchestrator):
    rnd = random.Random(20261128)
    headers = {"X-Avtomatika-Token": "admin-token", "X-Worker-Token": GLOBAL_WORKER_TOKEN}
    worker = f"fuzz-{rnd.randint(0, 10**9)}"
    with orchestrator.client("admin-token") as http:
        http.post("/_worker/workers/register", json={"worker_id": worker, "supported_tasks": ["fuzz"]}, headers=headers)
        job_id = http.post("/api/v1/jobs/tasks", json={"task_type": "fuzz"}).json()["job_id"]
        deadline, sent = time.monotonic() + 4, 0
        while time.monotonic() < deadline and sent < 2000:
            method, path = rnd.choice(ROUTES)
            path = path.replace("{id}", rnd.choice([job_id, "x", "%00", "a" * 200])).replace("{worker}", worker)
            body = _value(rnd)
            if isinstance(body, dict) and rnd.random() < 0.3:
                body.setdefault("worker_id", worker)
            raw = json.dumps(body) if rnd.random() < 0.9 else "".join(rnd.choices(string.printable, k=50))
            answer = http.request(method, path, content=raw, headers={**headers, "Content-Type": "application/json"})
            sent += 1
            assert answer.status_code < 500, (method, path, raw[:200], answer.text[:300])
            if answer.status_code >= 400:
                assert set(answer.json()) == {"error", "details"}, answer.text[:300]
    assert sent > 100
