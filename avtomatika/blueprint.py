"""`StateMachineBlueprint`: a pipeline described once as states and their handlers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, TypeVar

from .conditions import Condition, parse_condition
from .errors import BlueprintError, HandlerError
from .graph import Edge, computes_targets, dispatches_without_success, reachable, static_edges, to_dot
from .injection import HandlerSpec

logger = logging.getLogger(__name__)

RESERVED_END_STATES = frozenset({"finished", "failed"})
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class StateDefinition:
    """A state: its default handler, conditional handlers in declaration order, and its flags."""

    name: str
    is_start: bool = False
    is_end: bool = False
    default: HandlerSpec | None = None
    conditional: list[tuple[Condition, HandlerSpec]] = field(default_factory=list)


class HandlerRegistration:
    """What `handler_for` returns: a decorator for the default handler with a `.when()` for conditional ones."""

    def __init__(self, blueprint: StateMachineBlueprint, state: StateDefinition) -> None:
        self._blueprint = blueprint
        self._state = state

    def __call__(self, func: F) -> F:
        if self._state.default is not None:
            raise BlueprintError(
                f"blueprint {self._blueprint.name!r}: state {self._state.name!r} already has a default handler",
                blueprint=self._blueprint.name,
                state=self._state.name,
            )
        self._state.default = HandlerSpec.inspect(func)
        return func

    def when(self, condition: str) -> Callable[[F], F]:
        """Register a handler that runs when `condition` holds (checked in declaration order)."""
        parsed = parse_condition(condition)

        def decorator(func: F) -> F:
            self._state.conditional.append((parsed, HandlerSpec.inspect(func)))
            return func

        return decorator


class StateMachineBlueprint:
    """A state machine of handlers; register it on an engine to expose its create route."""

    def __init__(
        self,
        name: str,
        api_version: str | None = None,
        api_endpoint: str | None = None,
        data_stores: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise BlueprintError(f"blueprint name must be a non-empty string, got {name!r}")
        self.name = name
        self.api_version = api_version
        self.api_endpoint = api_endpoint.strip("/") if api_endpoint else None
        self.data_stores = SimpleNamespace(**(data_stores or {}))
        self.states: dict[str, StateDefinition] = {}
        self.aggregators: dict[str, HandlerSpec] = {}
        self.edges: list[Edge] = []

    @property
    def route(self) -> str | None:
        """The job creation route, or None for a blueprint that only runs as a child."""
        if not self.api_endpoint:
            return None
        if self.api_version:
            return f"/api/{self.api_version}/{self.api_endpoint}"
        return f"/api/{self.api_endpoint}"

    def _state(self, name: str) -> StateDefinition:
        if not isinstance(name, str) or not name:
            raise BlueprintError(f"blueprint {self.name!r}: state name must be a non-empty string, got {name!r}")
        return self.states.setdefault(name, StateDefinition(name))

    def handler_for(self, state: str, is_start: bool = False, is_end: bool = False) -> HandlerRegistration:
        """Declare the handler of `state`; use `.when(...)` on the result for a conditional one."""
        definition = self._state(state)
        definition.is_start = definition.is_start or is_start
        definition.is_end = definition.is_end or is_end
        return HandlerRegistration(self, definition)

    def aggregator_for(self, state: str) -> Callable[[F], F]:
        """Register the fan-in handler that runs once every branch of a `dispatch_parallel` is done."""

        def decorator(func: F) -> F:
            if state in self.aggregators:
                raise BlueprintError(
                    f"blueprint {self.name!r}: state {state!r} already has an aggregator",
                    blueprint=self.name,
                    state=state,
                )
            self.aggregators[state] = HandlerSpec.inspect(func)
            return func

        return decorator

    @property
    def start_state(self) -> str:
        """The single start state (valid after `validate`)."""
        starts = [s.name for s in self.states.values() if s.is_start]
        if len(starts) != 1:
            raise BlueprintError(f"blueprint {self.name!r}: expected exactly one start state, found {starts}")
        return starts[0]

    def is_end_state(self, state: str) -> bool:
        """True for states declared `is_end=True` and for the reserved `finished` and `failed`."""
        definition = self.states.get(state)
        return state in RESERVED_END_STATES or bool(definition and definition.is_end)

    def has_state(self, state: str) -> bool:
        """True for declared states, aggregator states and reserved end states."""
        return state in self.states or state in self.aggregators or state in RESERVED_END_STATES

    def find_handler(
        self, state: str, initial_data: dict[str, Any], state_history: dict[str, Any]
    ) -> HandlerSpec | None:
        """The handler for `state`: the first matching condition, else the default, else None (no handler).

        Raises `HandlerError` when the state has conditional handlers, none matches and there is no default.
        """
        if state in self.aggregators and state not in self.states:
            return self.aggregators[state]
        definition = self.states.get(state)
        if definition is None:
            if state in RESERVED_END_STATES:
                return None
            raise HandlerError(f"blueprint {self.name!r} has no state {state!r}", state=state)
        for condition, spec in definition.conditional:
            if condition.evaluate(initial_data, state_history):
                return spec
        if definition.default is None and definition.conditional:
            conditions = "; ".join(c.source for c, _ in definition.conditional)
            raise HandlerError(
                f"state {state!r}: no condition matched ({conditions}) and there is no default handler",
                state=state,
            )
        return definition.default

    def validate(self) -> None:
        """Check start state and every statically visible target; raise `BlueprintError` naming the state."""
        starts = [s.name for s in self.states.values() if s.is_start]
        if not starts:
            raise BlueprintError(f"blueprint {self.name!r} has no start state (is_start=True)", blueprint=self.name)
        if len(starts) > 1:
            raise BlueprintError(
                f"blueprint {self.name!r} has several start states: {', '.join(sorted(starts))}",
                blueprint=self.name,
            )
        for definition in self.states.values():
            if definition.default is None and not definition.conditional and not definition.is_end:
                raise BlueprintError(
                    f"blueprint {self.name!r}: state {definition.name!r} has no handler", blueprint=self.name
                )
            if definition.default is None and definition.conditional:
                conditions = "; ".join(c.source for c, _ in definition.conditional)
                raise BlueprintError(
                    f"blueprint {self.name!r}: state {definition.name!r} has only conditional handlers "
                    f"({conditions}) and no default: a job there fails when none matches; add "
                    f"@{self.name}.handler_for({definition.name!r}) without .when(...)",
                    blueprint=self.name,
                    state=definition.name,
                )
        edges: list[Edge] = []
        for state, spec in self._all_handlers():
            edges.extend(static_edges(state, spec.func))
        for edge in edges:
            if not self.has_state(edge.target):
                raise BlueprintError(
                    f"blueprint {self.name!r}: state {edge.source!r} leads to unknown state {edge.target!r}",
                    blueprint=self.name,
                    state=edge.source,
                    target=edge.target,
                )
        fan_in_targets = {e.target for e in edges if e.kind == "fan-in"}
        for state in self.aggregators:
            if state not in fan_in_targets:
                logger.warning(
                    "blueprint %r: aggregator state %r is not the aggregate_into of any dispatch_parallel",
                    self.name,
                    state,
                )
        self.edges = edges
        self._warn_static(starts[0], edges)

    def _warn_static(self, start: str, edges: list[Edge]) -> None:
        """Log what is probably a mistake but may be intended (dynamic targets are not visible statically)."""
        seen = reachable(start, edges)
        handlers = self._all_handlers()
        computed = any(state in seen and computes_targets(spec.func) for state, spec in handlers)
        for state in self.states:  # an aggregator nothing fans into has its own warning
            if state not in seen and not computed:
                logger.warning(
                    "blueprint %r: state %r is not reachable from the start state %r by any transition visible "
                    "in the handlers (a typo in a state name?)",
                    self.name,
                    state,
                    start,
                )
        for state, spec in handlers:
            for line in dispatches_without_success(spec.func):
                logger.warning(
                    "blueprint %r: state %r: dispatch_task at %s:%d has no 'success' in transitions, so a "
                    "successful result fails the job",
                    self.name,
                    state,
                    spec.func.__code__.co_filename if hasattr(spec.func, "__code__") else "?",
                    line,
                )

    def _all_handlers(self) -> list[tuple[str, HandlerSpec]]:
        pairs: list[tuple[str, HandlerSpec]] = []
        for definition in self.states.values():
            pairs.extend((definition.name, spec) for _, spec in definition.conditional)
            if definition.default is not None:
                pairs.append((definition.name, definition.default))
        pairs.extend(self.aggregators.items())
        return pairs

    def render_graph(self) -> str:
        """The state graph as DOT text, built without the graphviz binary."""
        if not self.edges:
            self.validate()
        states = {name: (d.is_start, self.is_end_state(name)) for name, d in self.states.items()}
        for name in self.aggregators:
            states.setdefault(name, (False, False))
        for edge in self.edges:
            states.setdefault(edge.target, (False, edge.target in RESERVED_END_STATES))
        return to_dot(self.name, states, self.edges)
