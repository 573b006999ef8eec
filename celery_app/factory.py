"""Build the Celery application of an engine: reliability settings, the step task and the sweep schedule.

The tasks call the application service (`avtomatika.service.Orchestrator`); this package never imports the
web side, the engine facade or the composition root.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from celery import Celery, chord
from celery.app.task import Context
from celery.signals import worker_init, worker_process_init, worker_process_shutdown
from kombu import Queue

from avtomatika import metrics, tracing
from avtomatika.registry import Registry
from avtomatika.service import Orchestrator

from .messages import step_message, task_message

logger = logging.getLogger(__name__)


def celery_settings(engine: Registry) -> dict[str, Any]:
    """Settings the reliability goals need (DESIGN §3, FACTS: Celery)."""
    config = engine.config
    url = engine.redis_url
    settings: dict[str, Any] = {
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": engine.step_queue(),
        # A worker started without -Q consumes the step queue, the sweep's and every native task type's queue.
        "task_queues": [
            Queue(engine.step_queue()),
            Queue(engine.sweep_queue()),
            *(Queue(engine.native_queue(t)) for t in engine.native_tasks),
        ],
        "task_routes": {"avtomatika.sweep": {"queue": engine.sweep_queue()}},
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        # Task events feed Flower; they cost ~15-25 % of the CPU of a step, so they are opt-in
        # (CELERY_TASK_EVENTS=true, or `celery worker -E` for the worker's own events).
        "worker_send_task_events": config.CELERY_TASK_EVENTS,
        "task_send_sent_event": config.CELERY_TASK_EVENTS,
        "worker_hijack_root_logger": False,
        "broker_connection_retry_on_startup": True,
        "result_expires": max(config.JOB_RETENTION_SECONDS, 86400),
        "result_chord_expires": max(config.JOB_RETENTION_SECONDS, 86400),
        "beat_schedule": {
            "avtomatika.sweep": {
                "task": "avtomatika.sweep",
                "schedule": float(config.WATCHER_INTERVAL_SECONDS),
                # Its own queue, and a message not started within one interval is dropped: the next one
                # does the same work, so sweeps never pile up and run back to back after a stall.
                "options": {"queue": engine.sweep_queue(), "expires": float(config.WATCHER_INTERVAL_SECONDS)},
            },
        },
    }
    if url:
        settings.update(
            broker_url=url,
            broker_transport="celery_app.transport:Transport",
            result_backend=url,
            broker_transport_options={
                "visibility_timeout": config.CELERY_VISIBILITY_TIMEOUT,
                "unacked_restore_interval": 1,
                "unacked_restore_throttle": 1,
            },
            redis_socket_timeout=30,
        )
    else:
        settings.update(
            broker_url="memory://",
            result_backend="cache+memory://",
            broker_transport_options={"polling_interval": 0.01},
        )
    return settings


# Celery's worker optimisations keep ONE task registry per process (the last worker started), so with
# several embedded engines in one process a step may run through another engine's task function. Messages
# therefore name their engine (its queue suffix, "" in Redis mode) and the task looks up its service here.
_providers: dict[str, Callable[[], Orchestrator]] = {}
# What a parked chord member keeps of its request to be completed later by another process (FACTS: Celery).
PARKED_FIELDS = (
    "id",
    "group",
    "group_index",
    "chord",
    "root_id",
    "parent_id",
    "correlation_id",
    "reply_to",
    "delivery_info",
    "chain",
    "callbacks",
    "errbacks",
    "task",
    "headers",
)


def create_celery(engine: Registry, service: Callable[[], Orchestrator]) -> Celery:
    """A Celery app for `engine` with `avtomatika.step`, `avtomatika.native` and `avtomatika.sweep`;
    `service()` returns the application service the tasks call (built after this app)."""
    app = Celery("avtomatika", set_as_current=False)
    app.conf.update(celery_settings(engine))
    _providers[engine.queue_suffix] = service
    if tracing.enabled(engine.config):
        _trace_tasks(engine)

    def current(engine_key: str = "") -> Orchestrator:
        return _providers.get(engine_key, service)() if engine_key else service()

    @app.task(name="avtomatika.step", bind=True, ignore_result=True, shared=False)
    def step(
        self: Any,
        job_id: str,
        seq: int,
        blueprint: str = "",
        state: str = "",
        engine_key: str = "",
        resent: bool = False,
    ) -> str:
        """Run one burst of a job's steps; `blueprint` and `state` are there for Flower. kombu marks a
        message it puts back (worker lost, visibility timeout) as redelivered; `resent` marks the sweep's
        re-send of a stalled step: both count as deliveries of a possibly poisonous step."""
        redelivered = resent or bool((self.request.delivery_info or {}).get("redelivered"))
        return current(engine_key).run_step(job_id, seq, redelivered=redelivered)

    @app.task(name="avtomatika.native", ignore_result=True, shared=False)
    def native(job_id: str, task_id: str, task_type: str, params: dict[str, Any], engine_key: str = "") -> str:
        """Run a native task type's function; its outcome goes through the worker result path."""
        return current(engine_key).run_native_task(job_id, task_id, task_type, params)

    @app.task(name="avtomatika.branch", bind=True, ignore_result=True, shared=False)
    def branch(self: Any, job_id: str, branch_id: str, engine_key: str = "") -> Any:
        """A chord member for one fan-out branch: it parks its request context until the branch's outcome
        is known (the result path completes it with `mark_as_done`), or returns the outcome if it is."""
        context = json.dumps({name: getattr(self.request, name, None) for name in PARKED_FIELDS}, default=str)
        outcome = current(engine_key).park_branch(job_id, branch_id, context)
        if outcome is None:
            # Parked: the result path counts this member later (`mark_as_done` on the saved context). With no
            # chord on the live request, returning does not count it now. Raising `Ignore` did the same but
            # built two billiard `ExceptionInfo`s (every frame's `co_positions`), ~1 ms of CPU per branch.
            self.request.chord = None
            return None
        return branch_id  # the outcome is in the branch ledger; the chord only counts

    @app.task(name="avtomatika.aggregate", ignore_result=True, shared=False)
    def aggregate(results: Any, job_id: str, group_id: str, engine_key: str = "") -> bool:
        """The chord body: the fan-in, once every branch has its outcome."""
        return current(engine_key).aggregate(job_id, group_id)

    @app.task(name="avtomatika.sweep", ignore_result=True, shared=False)
    def sweep() -> int:
        """Periodic timers (guarded by a lock so several beats are safe)."""
        return current().sweep()

    return app


class CeleryStepScheduler:
    """The engine core's `StepScheduler` on Celery: one `avtomatika.step` message per scheduled step."""

    def __init__(self, app: Celery, engine: Registry) -> None:
        self.app = app
        self.step_queue = engine.step_queue()
        self.direct = bool(engine.redis_url)
        self.engine_key = engine.queue_suffix
        self.native_queue = engine.native_queue
        self.task = app.tasks["avtomatika.step"]
        self.native = app.tasks["avtomatika.native"]
        self.branch = app.tasks["avtomatika.branch"]
        self.aggregate = app.tasks["avtomatika.aggregate"]

    def run_native_task(self, job_id: str, task_id: str, task_type: str, params: dict[str, Any]) -> None:
        self.native.apply_async(
            args=(job_id, task_id, task_type, params),
            kwargs={"engine_key": self.engine_key} if self.engine_key else None,
            queue=self.native_queue(task_type),
        )

    @property
    def chords(self) -> bool:
        """Fan-ins are chords in Redis mode; the embedded default's cache result backend cannot complete
        externally completed members, so there the branch count triggers the fan-in."""
        return self.direct

    def start_fan_in(self, job_id: str, group_id: str, branch_ids: list[str]) -> None:
        if not self.direct:
            return
        extra = {"engine_key": self.engine_key} if self.engine_key else {}
        header = [
            self.branch.signature((job_id, branch_id), extra, task_id=branch_id, queue=self.step_queue)
            for branch_id in branch_ids
        ]
        body = self.aggregate.signature((job_id, group_id), extra, queue=self.step_queue, immutable=False)
        chord(header, body).apply_async()

    def complete_branch(self, branch_id: str, result: dict[str, Any], context: str) -> None:
        # The outcome itself lives in the branch ledger (the fan-in reads it there): the chord only counts,
        # so the member's value is its id and no result record is stored for it.
        self.app.backend.mark_as_done(branch_id, branch_id, request=Context(json.loads(context)), store_result=False)

    def step_message(self, job_id: str, seq: int, *, blueprint: str = "", state: str = "") -> tuple[str, str] | None:
        """(list key, message) of an immediate step, for storage to push atomically; None in embedded mode."""
        if not self.direct:
            return None
        kwargs: dict[str, Any] = {"blueprint": blueprint, "state": state}
        return self.step_queue, step_message(self.step_queue, job_id, seq, kwargs, tracing.current_context())

    def native_message(
        self, job_id: str, task_id: str, task_type: str, params: dict[str, Any]
    ) -> tuple[str, str] | None:
        """(list key, message) of a native task's Celery message, for storage to push atomically with the
        commit that grants its lease (no crash window between the two); None in embedded mode."""
        if not self.direct:
            return None
        queue = self.native_queue(task_type)
        args = [job_id, task_id, task_type, params]
        return queue, task_message(queue, "avtomatika.native", args, {}, tracing.current_context())

    def schedule_step(
        self, job_id: str, seq: int, delay: float = 0.0, *, blueprint: str = "", state: str = "", resent: bool = False
    ) -> None:
        self.task.apply_async(
            args=(job_id, seq),
            kwargs={
                "blueprint": blueprint,
                "state": state,
                **({"engine_key": self.engine_key} if self.engine_key else {}),
                **({"resent": True} if resent else {}),
            },
            countdown=delay if delay > 0 else None,
            queue=self.step_queue,
            headers=tracing.current_context(),
        )


@worker_process_shutdown.connect
def _write_pending_metrics(**_: Any) -> None:
    """A prefork child ends without running `atexit`: write what its metrics buffer still holds."""
    metrics.flush_all()


def _trace_tasks(engine: Registry) -> None:
    """Trace task publishing and runs (OpenTelemetry's Celery instrumentation). The tracer provider is made
    in each process that runs tasks: a prefork child after the fork (an exporter's thread does not survive
    one), a solo or thread pool worker at its start, the embedded default in `create_app`."""
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    instrumentor = CeleryInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()

    def in_child(**_: Any) -> None:
        tracing.configure(engine.config, "worker")

    def at_start(sender: Any = None, **_: Any) -> None:
        if "prefork" not in str(getattr(sender, "pool_cls", "")):
            tracing.configure(engine.config, "worker")

    worker_process_init.connect(in_child, weak=False)
    worker_init.connect(at_start, weak=False)
