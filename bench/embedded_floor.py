"""The floor of the embedded default: what an S1 job costs in its parts, with no HTTP server, one fresh process each.

    .venv/bin/python -m bench.embedded_floor                 # also run by `bench.compare` with `s1-memory`
    .venv/bin/python -m bench.embedded_floor -n 3000 --part flask

Parts (CPU ms per S1 job, every thread of the process, `time.process_time()`; `-k` jobs created, then awaited):
  flask    a bare Flask app with an S1 job's two routes (create: JSON in, 202 JSON out; job GET: JSON out), no
           authentication, validation, metrics or storage, called on the WSGI app in-process: Flask's own floor
           for one job, whichever server runs it
  engine   the engine alone: `Orchestrator.create_job` and a job view with `wait` on MemoryStorage, the five
           steps on the embedded step pool, no Flask and no HTTP
  app      this project's Flask app in-process: `POST /api/v1/jobs/linear` and `GET /api/v1/jobs/{id}?wait=5`
           on the WSGI app (authentication, rate limit, schemas, metrics) and the step pool, no HTTP server
`flask + engine` is what any Flask-served embedded default costs per job before a single byte of HTTP is parsed;
s1-memory's CPU per job minus `app` is the embedded HTTP server's share.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.procs import ROOT

PARTS = ("flask", "engine", "app")
BODY = json.dumps({"initial_data": {"value": 21}}).encode()


def _environ(
    method: str, path: str, query: str = "", body: bytes = b"", token: str = ""
) -> Callable[[], dict[str, Any]]:
    """A factory of fresh WSGI environs for one request (building them is not part of what is measured)."""
    from werkzeug.test import EnvironBuilder

    headers = {"X-Avtomatika-Token": token, "Content-Type": "application/json"}
    base = EnvironBuilder(path=path, method=method, query_string=query, data=body, headers=headers).get_environ()

    def fresh() -> dict[str, Any]:
        environ = dict(base)
        environ["wsgi.input"] = io.BytesIO(body)
        return environ

    return fresh


def _call(app: Any, environ: dict[str, Any]) -> bytes:
    status: list[str] = []
    body = b"".join(app(environ, lambda s, h, e=None: status.append(s)))
    if not status[0].startswith("20"):
        raise RuntimeError(f"{status[0]}: {body[:200]!r}")
    return body


def bare_flask() -> Callable[[int], None]:
    """One S1 job's two requests on a bare Flask app."""
    from flask import Flask, jsonify, request

    app = Flask("floor")

    @app.post("/api/v1/jobs/linear")
    def create() -> Any:
        data = request.get_json()
        return jsonify(status="accepted", job_id="0b0e6c39-bare", initial_data=data["initial_data"]), 202

    @app.get("/api/v1/jobs/<job_id>")
    def view(job_id: str) -> Any:
        wait = float(request.args.get("wait", 0))
        return jsonify(id=job_id, status="finished", current_state="done", waited=wait,
                       state_history={"visited": ["start", "prepare", "process", "publish", "done"]})  # fmt: skip

    post = _environ("POST", "/api/v1/jobs/linear", body=BODY)
    get = _environ("GET", "/api/v1/jobs/0b0e6c39-bare", "wait=5")

    def jobs(k: int) -> None:
        for _ in range(k):
            json.loads(_call(app, post()))
            json.loads(_call(app, get()))

    return jobs


def engine_alone() -> Callable[[int], None]:
    """One S1 job through the engine's service, no Flask, no HTTP."""
    from avtomatika.security import Client
    from bench.apps.bench_app import engine

    runner = engine.wiring.runner()
    runner.steps.start()
    service = engine.service
    client = Client("bench", token_hash="-")

    def jobs(k: int) -> None:
        ids = [service.create_job("linear", {"value": 21}, client.public()) for _ in range(k)]
        for job_id in ids:
            if service.job_view(job_id, client, wait=5)["status"] != "finished":
                raise RuntimeError(f"job {job_id} did not finish")

    return jobs


def this_app() -> Callable[[int], None]:
    """One S1 job on this project's Flask app (create, then the job GET with `?wait=5`), no HTTP server."""
    from bench.apps.bench_app import BENCH_TOKEN, engine

    runner = engine.wiring.runner()
    app = runner.make_wsgi_app()
    runner.steps.start()
    post = _environ("POST", "/api/v1/jobs/linear", body=BODY, token=BENCH_TOKEN)
    get = _environ("GET", "/api/v1/jobs/-", "wait=5", token=BENCH_TOKEN)

    def get_job(job_id: str) -> dict[str, Any]:
        environ = get()  # the same environ as for the path `-`, with the job's path put in
        environ["PATH_INFO"] = f"/api/v1/jobs/{job_id}"
        environ["REQUEST_URI"] = environ["RAW_URI"] = f"/api/v1/jobs/{job_id}?wait=5"
        return dict(json.loads(_call(app, environ)))

    def jobs(k: int) -> None:
        ids = [json.loads(_call(app, post()))["job_id"] for _ in range(k)]
        for job_id in ids:
            if get_job(job_id)["status"] != "finished":
                raise RuntimeError(f"job {job_id} did not finish")

    return jobs


BUILD: dict[str, Callable[[], Callable[[int], None]]] = {"flask": bare_flask, "engine": engine_alone, "app": this_app}


def run_part(part: str, n: int, warmup: int, k: int) -> dict[str, Any]:
    """Run `n` jobs of `part` after `warmup`, `k` created before the first is awaited, in this process; CPU of
    every thread per job."""
    jobs = BUILD[part]()
    jobs(warmup)
    cpu, wall = time.process_time(), time.perf_counter()
    for done in range(0, n, k):
        jobs(min(k, n - done))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {
        "part": part,
        "jobs": n,
        "cpu_ms_per_job": round(cpu / n * 1000, 3),
        "wall_ms_per_job": round(wall / n * 1000, 3),
    }


def measure(n: int = 3000, warmup: int = 300, k: int = 64) -> dict[str, dict[str, Any]]:
    """Every part in a fresh process of this interpreter, one after the other."""
    results = {}
    for part in PARTS:
        out = subprocess.run(
            [sys.executable, "-m", "bench.embedded_floor", "--part", part, "-n", str(n), "--warmup", str(warmup),
             "-k", str(k)],
            cwd=ROOT, env={**os.environ, "API_PORT": "0"}, capture_output=True, text=True, check=True, timeout=600,
        )  # fmt: skip
        results[part] = json.loads(out.stdout.strip().splitlines()[-1])
    return results


def summary(floor: dict[str, dict[str, Any]], original_ms: float | None = None, served_ms: float | None = None) -> str:
    """One paragraph: the parts, their sum, and what the original's whole job and the served embedded job cost."""
    ms = {part: floor[part]["cpu_ms_per_job"] for part in floor}
    lines = [
        f"Embedded default, CPU ms per S1 job with no HTTP server (one process each, {floor['app']['jobs']} jobs):",
        f"  bare Flask, the job's two requests   {ms['flask']:.2f}",
        f"  the engine alone                     {ms['engine']:.2f}",
        f"  sum: Flask's floor + the engine      {ms['flask'] + ms['engine']:.2f}",
        f"  this project's Flask app + engine    {ms['app']:.2f}",
    ]
    if served_ms is not None:
        lines.append(
            f"  served by engine.run() (s1-memory)   {served_ms:.2f}  (HTTP server {served_ms - ms['app']:.2f})"
        )
    if original_ms is not None:
        lines.append(f"  the original's whole job (s1-memory) {original_ms:.2f}  (HTTP server and engine included)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=3000, help="jobs measured per part")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("-k", type=int, default=64, help="jobs created before the first is awaited (in flight)")
    parser.add_argument("--part", choices=PARTS, help="run one part in this process and print its JSON")
    args = parser.parse_args(argv)
    if args.part:
        print(json.dumps(run_part(args.part, args.n, args.warmup, args.k)), flush=True)
        os._exit(0)  # the step pool's threads need no orderly stop here
    print(summary(measure(args.n, args.warmup, args.k)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
