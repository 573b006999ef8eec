"""`avtomatika demo`: run the bundled demo blueprints end to end through the real HTTP API."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.request
from typing import Any, TextIO

TERMINAL = {"finished", "failed", "cancelled", "quarantined"}
DEMO_JOBS = [
    ("/api/v1/jobs/video", {"name": "holiday", "duration": 95}),
    ("/api/v1/jobs/video", {"name": "lecture", "duration": 3600}),
    ("/api/v1/jobs/video", {"name": "empty", "duration": 0}),
    ("/api/v1/jobs/linear", {"value": 21}),
    ("/api/v1/jobs/conditional", {"type": "urgent"}),
    ("/api/v1/jobs/priced_order", {"item": "pear", "quantity": 4}),
]


def _call(base: str, token: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("X-Avtomatika-Token", token)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _result(view: dict[str, Any]) -> str:
    """A short summary of what a job produced: its error, else its state_history's keys and small values."""
    if view.get("error_message"):
        return str(view["error_message"])
    parts = []
    for key, value in (view.get("state_history") or {}).items():
        text = json.dumps(value)
        parts.append(f"{key}={text}" if len(text) <= 30 else key)
    return ", ".join(parts)


def print_table(views: list[dict[str, Any]], out: TextIO) -> None:
    """One line per job: id prefix, blueprint, status, final state and a short result."""
    rows = [
        (view["id"][:8], view["blueprint_name"], view["status"], view["current_state"] or "", _result(view))
        for view in views
    ]
    header = ("JOB", "BLUEPRINT", "STATUS", "STATE", "RESULT")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[4]
        print(line.rstrip()[:160], file=out)


async def run_demo(out: TextIO = sys.stdout, timeout: float = 60.0, *, as_json: bool = False) -> int:
    """Start the demo engine, create jobs over HTTP, show progress and a table of the jobs (every full view
    as JSON with `as_json`); 0 when all ended."""
    from blueprints.demo import engine
    from blueprints.demo_worker import worker

    engine.config.API_HOST = "127.0.0.1"
    engine.config.API_PORT = 0
    await engine.start()
    try:
        base = f"http://127.0.0.1:{engine.port}"
        token = engine.config.CLIENT_TOKEN
        loop = asyncio.get_running_loop()
        mode = "Redis mode" if engine.redis_url else "embedded mode, no servers needed"
        print(f"Avtomatika demo: API on {base} ({mode})", file=out)
        worker.configure_connection(orchestrator_urls=[base], token=engine.config.GLOBAL_WORKER_TOKEN)
        await worker.start()
        print(f"  HTTP worker {worker.worker_id} serves {', '.join(worker.task_types)}", file=out)
        jobs: dict[str, str] = {}
        for path, body in DEMO_JOBS:
            answer = await loop.run_in_executor(None, _call, base, token, "POST", path, body)
            jobs[answer["job_id"]] = path
            print(f"  created {answer['job_id']} via POST {path} {json.dumps(body)}", file=out)
        seen: dict[str, tuple[str, str]] = {}
        views: dict[str, Any] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for job_id in jobs:
                view = await loop.run_in_executor(None, _call, base, token, "GET", f"/api/v1/jobs/{job_id}")
                views[job_id] = view
                now = (view["status"], view["current_state"])
                if seen.get(job_id) != now:
                    seen[job_id] = now
                    print(f"  {job_id[:8]} {view['blueprint_name']:<18} {now[0]:<12} at {now[1]}", file=out)
            if all(v["status"] in TERMINAL for v in views.values()):
                break
            await asyncio.sleep(0.05)
        if as_json:
            for view in views.values():
                print(json.dumps(view, indent=2, sort_keys=True), file=out)
        print_table(list(views.values()), out)
        ended = all(v["status"] in TERMINAL for v in views.values())
        print("demo complete" if ended else "demo timed out", file=out)
        print("full job views: avtomatika demo --json", file=out)
        print("next: docs/quickstart.md", file=out)
        return 0 if ended else 1
    finally:
        await worker.stop()
        await engine.stop()
