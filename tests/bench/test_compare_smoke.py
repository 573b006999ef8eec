"""Smoke run of the side-by-side benchmark (`python -m bench.compare`): every scenario, a few jobs each.

Completion only: the original 1.0b4 (from PyPI, in `.bench-venvs/`) and this project each finish every job of
every scenario with no errors, and each parks 30 jobs for the memory figure; the embedded default's parts
(`bench/embedded_floor.py`) each run their jobs to the end. No speed is asserted; the figures
of a real run are in bench/RESULTS.md."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import ROOT

pytestmark = pytest.mark.redis


@pytest.mark.timeout(600)
def test_every_scenario_completes_on_both_sides():
    args = [sys.executable, "-m", "bench.compare", "-n", "20", "--n2", "12", "-k", "4", "--warmup", "4",
            "--parked", "30", "--quiet-wait", "0", "--time-limit", "60"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "AVTOMATIKA_", "PYTEST_"))}
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=580)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = re.search(r"^summary: (\S+)$", done.stdout, re.M)
    assert summary, done.stdout[-3000:]
    rows = json.loads(Path(summary.group(1)).read_text())
    assert [row["scenario"] for row in rows] == [
        "s1-memory", "s1-seed-redis", "s1-production", "s2-seed-redis", "s2-production", "w3-size", "s1-memory-floor"
    ]  # fmt: skip
    floor = rows.pop()
    for part in ("flask", "engine", "app"):  # each part ran its 20 jobs (a job that does not finish raises)
        assert floor[part]["jobs"] == 20 and floor[part]["cpu_ms_per_job"] > 0, floor
    assert "this project's Flask app + engine" in done.stdout
    size = rows.pop()
    assert size["original"]["jobs"] == size["ours"]["jobs"] == 30, size
    for row in rows:
        for side in ("original", "ours"):
            result = row[side]
            wanted = 20 if row["scenario"].startswith("s1") else 12
            assert (result["completed"], result["errors"]) == (wanted, {}), (row["scenario"], side, result)
            assert set(result["statuses"]) == {"finished"}, (row["scenario"], side, result["statuses"])
    assert "| s1-memory " in done.stdout and "x |" in done.stdout  # the table with the ratios
