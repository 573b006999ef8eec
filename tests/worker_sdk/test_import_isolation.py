"""The SDK must import on a machine without Flask or Celery."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CODE = """
import sys
sys.modules["flask"] = None
sys.modules["celery"] = None
import avtomatika.worker
import avtomatika.worker.cli
import avtomatika.worker.testing
from avtomatika.worker import Worker
worker = Worker("w", "http://localhost:8080", "t")
assert not any(name.split(".")[0] in ("flask", "celery", "kombu", "werkzeug") and sys.modules[name] is not None
               for name in sys.modules), "flask/celery imported"
print("ok")
"""


def test_worker_sdk_imports_without_flask_and_celery() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CODE], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
