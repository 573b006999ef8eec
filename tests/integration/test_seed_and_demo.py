"""The seed's Quick Start program runs unchanged, and `avtomatika demo` runs end to end and exits 0."""

from __future__ import annotations

import subprocess
import sys

import httpx

from tests.services import BIN, ROOT, Process, free_port, service_env, wait_for_status, wait_until

QUICKSTART = ROOT / "tests/apps/seed_quickstart.py"
TOKEN = "my-secret-client-token"


def _run_quickstart(**env: str) -> None:
    port = free_port()
    proc = Process([sys.executable, str(QUICKSTART)], service_env(API_PORT=str(port), **env), "quickstart")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_status(proc, base, "quick start server")
        headers = {"X-Avtomatika-Token": TOKEN}
        created = httpx.post(base + "/api/v1/jobs/my_flow", json={"hello": "world"}, headers=headers)
        assert created.status_code == 202, created.text
        job_id = created.json()["job_id"]

        def finished():
            view = httpx.get(f"{base}/api/v1/jobs/{job_id}", headers=headers).json()
            return view if view["status"] == "finished" else None

        view = wait_until(finished, 20, what="job finished")
        assert view["current_state"] == "end"
        wait_until(lambda: f"Job {job_id} | Complete." in proc.output(), 5, what="end handler output")
        assert f"Job {job_id} | Start: {{'hello': 'world'}}" in proc.output()
    finally:
        proc.stop()


def test_seed_quickstart_is_copied_verbatim():
    """The file under test is the seed's program (only the page's lost indentation is restored). The page
    is kept in the repository (`tests/apps/seed-1.0b4-pypi-page.txt`, the public PyPI page of 1.0b4)."""
    seed = ROOT / "tests/apps/seed-1.0b4-pypi-page.txt"
    page = " ".join(seed.read_text().split())
    program = QUICKSTART.read_text()
    for line in program.splitlines():
        if line.strip():
            assert " ".join(line.split()) in page, line


def test_seed_quickstart_runs_unchanged_embedded():
    _run_quickstart()


def test_seed_quickstart_uses_redis_when_configured(redis_url):
    import redis

    _run_quickstart(REDIS_URL=redis_url + "/2")
    client = redis.Redis.from_url(redis_url + "/2")
    assert any(key.startswith(b"avtomatika:job:") for key in client.scan_iter()), "job state was not in Redis"


def test_demo_command_exits_zero():
    result = subprocess.run(
        [str(BIN / "avtomatika"), "demo"],
        cwd=ROOT,
        env=service_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo complete" in result.stdout
    assert "waiting_for_worker at transcode" in result.stdout  # progress lines show intermediate states
    assert "HTTP worker demo-transcoder serves transcode_video" in result.stdout
    lines = result.stdout.splitlines()
    table = lines[lines.index(next(line for line in lines if line.startswith("JOB "))) :]
    assert table[0].split() == ["JOB", "BLUEPRINT", "STATUS", "STATE", "RESULT"]
    rows = table[1:7]
    assert [row.split()[2] for row in rows] == ["finished"] * 6
    assert 'output_path="/videos/holiday.mp4"' in rows[0]  # the SDK worker's result
    assert lines[-1] == "next: docs/quickstart.md"
    assert "{" not in result.stdout.split("JOB ", 1)[1]  # no JSON dump without --json
    assert len(lines) < 30
