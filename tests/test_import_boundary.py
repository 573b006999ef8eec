"""`avtomatika` is the library: importing it never pulls in Flask or Celery (STYLE "A layout that shows ...")."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.services import ROOT

MODULES = [
    "avtomatika",
    "avtomatika.storage",
    "avtomatika.core",
    "avtomatika.engine",
    "avtomatika.security",
    "avtomatika.runner",
]


def run_with_blocked(blocked: list[str], modules: list[str]) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(
        f"""
        import importlib, sys
        for name in {blocked!r}:
            sys.modules[name] = None  # any import of it now raises ImportError
        for name in {modules!r}:
            importlib.import_module(name)
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in {blocked!r} and sys.modules[m] is not None)
        assert not leaked, leaked
        print("ok")
        """
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def test_library_imports_without_flask_and_celery():
    result = run_with_blocked(["flask", "celery"], MODULES)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_block_is_effective():
    # the adapters do need Flask and Celery, so the same check on them must fail
    result = run_with_blocked(["flask", "celery"], ["webapi.app", "celery_app.factory"])
    assert result.returncode != 0
    assert "ImportError" in result.stderr or "ModuleNotFoundError" in result.stderr
