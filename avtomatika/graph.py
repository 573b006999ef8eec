"""Static analysis of handlers into graph edges, and DOT output without the graphviz binary."""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# action method -> (edge kind, label prefix) for the `transitions=` dict it takes
_TRANSITION_DICTS = {
    "dispatch_task": ("task", "task"),
    "await_human_approval": ("approval", "decision"),
    "run_blueprint": ("child", "child"),
}
_STYLES = {
    "transition": "solid",
    "task": "bold",
    "approval": "dashed",
    "child": "dotted",
    "fan-in": "tapered",
}


@dataclass(frozen=True)
class Edge:
    """One possible move between states, as visible in the handler's source."""

    source: str
    target: str
    kind: str  # transition | task | approval | child | fan-in
    label: str = ""


def _source_tree(func: Callable[..., Any]) -> ast.AST | None:
    try:
        source = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        return None
    try:
        return ast.parse(source)
    except SyntaxError:
        return None


def _keyword(call: ast.Call, name: str, position: int) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    if len(call.args) > position:
        return call.args[position]
    return None


def _string(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def static_edges(state: str, func: Callable[..., Any]) -> list[Edge]:
    """Edges from `state` found in literal action calls inside `func` (dynamic targets are not seen)."""
    tree = _source_tree(func)
    if tree is None:
        return []
    edges: list[Edge] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        method = node.func.attr
        if method == "transition_to":
            target = _string(_keyword(node, "state", 0))
            if target is not None:
                edges.append(Edge(state, target, "transition"))
        elif method in _TRANSITION_DICTS:
            kind, prefix = _TRANSITION_DICTS[method]
            position = {"dispatch_task": 2, "await_human_approval": 2, "run_blueprint": 2}[method]
            mapping = _keyword(node, "transitions", position)
            if isinstance(mapping, ast.Dict):
                for key, value in zip(mapping.keys, mapping.values, strict=True):
                    label, target = _string(key), _string(value)
                    if label is not None and target is not None:
                        edges.append(Edge(state, target, kind, f"{prefix}: {label}"))
        elif method == "dispatch_parallel":
            target = _string(_keyword(node, "aggregate_into", 1))
            if target is not None:
                edges.append(Edge(state, target, "fan-in", "fan-in"))
    return edges


def dispatches_without_success(func: Callable[..., Any]) -> list[int]:
    """Source line numbers (in `func`'s file) of `dispatch_task` calls whose literal `transitions=` dict has no
    "success" key: a successful result would fail the job."""
    tree = _source_tree(func)
    if tree is None:
        return []
    first = func.__code__.co_firstlineno if hasattr(func, "__code__") else 1
    lines: list[int] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "dispatch_task":
            mapping = _keyword(node, "transitions", 2)
            if isinstance(mapping, ast.Dict) and all(key is not None for key in mapping.keys):
                keys = {_string(key) for key in mapping.keys}
                if None not in keys and "success" not in keys:
                    lines.append(first + node.lineno - 1)
    return lines


def computes_targets(func: Callable[..., Any]) -> bool:
    """True when `func` names a target state that is not a string literal (or its source cannot be read): the
    states it leads to are not statically visible."""
    tree = _source_tree(func)
    if tree is None:
        return True
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        method = node.func.attr
        if method == "transition_to" and _string(_keyword(node, "state", 0)) is None:
            return True
        if method in _TRANSITION_DICTS:
            mapping = _keyword(node, "transitions", 2)
            if not isinstance(mapping, ast.Dict) or any(_string(value) is None for value in mapping.values):
                return True
        if method == "dispatch_parallel" and _string(_keyword(node, "aggregate_into", 1)) is None:
            return True
    return False


def reachable(start: str, edges: list[Edge]) -> set[str]:
    """The states reachable from `start` along `edges`."""
    seen, todo = {start}, [start]
    while todo:
        state = todo.pop()
        for edge in edges:
            if edge.source == state and edge.target not in seen:
                seen.add(edge.target)
                todo.append(edge.target)
    return seen


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(name: str, states: dict[str, tuple[bool, bool]], edges: list[Edge]) -> str:
    """DOT text: start state as a double circle's neighbour arrow, end states as double circles."""
    lines = [f"digraph {_quote(name)} {{", "  rankdir=LR;", '  __start__ [shape=point, label=""];']
    for state, (is_start, is_end) in states.items():
        shape = "doublecircle" if is_end else "box"
        lines.append(f"  {_quote(state)} [shape={shape}];")
        if is_start:
            lines.append(f"  __start__ -> {_quote(state)};")
    for edge in edges:
        attrs = [f"style={_STYLES.get(edge.kind, 'solid')}"]
        if edge.label:
            attrs.append(f"label={_quote(edge.label)}")
        lines.append(f"  {_quote(edge.source)} -> {_quote(edge.target)} [{', '.join(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
