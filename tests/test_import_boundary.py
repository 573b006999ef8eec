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


# -- static: every import statement, nested ones included --------------------------------------------------

PACKAGES = ("avtomatika", "webapi", "celery_app")
COMPOSITION_ROOT = "avtomatika.composition"


def module_name(path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path) -> set[str]:
    """Every module an import statement of `path` names, wherever the statement is (function bodies,
    `if TYPE_CHECKING:` blocks, try/except); relative imports resolved."""
    import ast

    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from a.b import c`: c is a module or a name of a.b; the edge goes to the longest module prefix
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def source_modules() -> dict[str, set[str]]:
    graph = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            graph[module_name(path)] = imports_of(path)
    return graph


def _is(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_only_the_composition_root_imports_the_adapters():
    offenders = {
        module: sorted(n for n in names if _is(n, "webapi") or _is(n, "celery_app"))
        for module, names in source_modules().items()
        if _is(module, "avtomatika") and module != COMPOSITION_ROOT
    }
    assert {m: n for m, n in offenders.items() if n} == {}


def test_adapters_depend_on_the_service_not_on_the_engine_or_the_root():
    forbidden = ("avtomatika.engine", "avtomatika.composition", "avtomatika.runner")
    graph = source_modules()
    offenders = {
        module: sorted(n for n in names if any(_is(n, f) for f in forbidden))
        for module, names in graph.items()
        if _is(module, "webapi") or _is(module, "celery_app")
    }
    assert {m: n for m, n in offenders.items() if n} == {}
    celery_to_web = {
        m: sorted(n for n in names if _is(n, "webapi")) for m, names in graph.items() if _is(m, "celery_app")
    }
    assert {m: n for m, n in celery_to_web.items() if n} == {}


def test_no_import_cycles():
    """Modules import one another without a loop (the statement-level graph, nested imports included)."""
    graph = source_modules()
    edges = {
        module: {t for t in (_resolve(n, graph) for n in names) if t and t != module} for module, names in graph.items()
    }
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, stack: list[str]) -> bool:
        state[node] = 1
        for nxt in edges[node]:
            if state.get(nxt) == 1:
                cycle.extend(stack[stack.index(nxt) :] + [nxt])
                return True
            if state.get(nxt) is None and visit(nxt, [*stack, nxt]):
                return True
        state[node] = 2
        return False

    for start in sorted(graph):
        if state.get(start) is None and visit(start, [start]):
            break
    assert cycle == [], " -> ".join(cycle)


def _resolve(name: str, graph: dict[str, set[str]]) -> str | None:
    """The longest module of the graph that `name` is or lies inside (None for third-party names)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in graph:
            return candidate
    return None


def test_the_static_check_sees_nested_imports(tmp_path):
    sample = ROOT / "avtomatika" / "_probe_for_test.py"
    sample.write_text("def f():\n    from webapi.app import create_app\n    return create_app\n")
    try:
        assert any(name.startswith("webapi.app") for name in imports_of(sample))
    finally:
        sample.unlink()
