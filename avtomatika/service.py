"""The application service: everything the HTTP API and the Celery tasks ask of the engine.

Adapters call these methods and get domain values back, or domain errors (`avtomatika.errors`); they never
reach into the core, the dispatcher or storage. HTTP status codes exist only in `webapi/errors.py`.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import tracing
from .branches import branch_id_of
from .config import Config
from .context import ClientConfig
from .core import OrchestratorCore, StepScheduler, job_event
from .errors import (
    AvtomatikaError,
    BlueprintNotFound,
    JobNotFound,
    TokensNotLoaded,
    Unauthorized,
    Unsupported,
    WorkerNotFound,
)
from .job import JOB_STATUSES, Job, JobStatus, job_view
from .metrics import OrchestrationMetrics, Snapshot
from .native import native_outcome
from .registry import Registry
from .reputation import refresh_reputations
from .results import TaskEvents
from .security import Client, load_worker_tokens
from .storage.base import StorageBackend
from .stream import TASK_STARTED, WORKER_REGISTERED, WORKER_STATUS_UPDATE, WorkerEvent
from .sweeper import Sweeper
from .tasks import NATIVE_WORKER, Claim
from .waits import current_task, wait_of
from .webhooks import WebhookDeliveries

if TYPE_CHECKING:  # pragma: no cover
    from .history import History

logger = logging.getLogger(__name__)


def worker_snapshot(record: dict[str, Any]) -> dict[str, Any]:
    """A worker record for the event stream (and so history): never a field that could hold a secret."""
    return {k: v for k, v in record.items() if "token" not in k.lower() and "secret" not in k.lower()}


class Orchestrator:
    """Jobs, workers and timers of one engine, on its storage and step scheduler."""

    def __init__(self, registry: Registry, scheduler: StepScheduler, history: History | None = None) -> None:
        self.registry = registry
        self.history = history
        self.config: Config = registry.config
        self.storage: StorageBackend = registry.storage
        self.core = OrchestratorCore(
            self.storage,
            self.config,
            registry.blueprints,
            scheduler,
            registry.stream,
            registry.native_tasks,
            registry.notifiers,
        )
        self.events = TaskEvents(self.core)
        self.dispatcher = self.core.dispatcher
        self.webhooks = WebhookDeliveries(self.storage, self.config)
        # subscribed to the event stream by the composition root, once per engine (as the webhooks are)
        self.metrics = OrchestrationMetrics(self.storage, self.history_backlog)
        self.sweeper = Sweeper(
            self.storage,
            self.config,
            self.events,
            self.webhooks,
            registry.stream,
            self._refresh_reputations if history is not None else None,
        )
        self._worker_tokens: dict[str, str] | None = None
        self.tracing = tracing.enabled(self.config)
        self.stopping = False  # `stop_waiting()`: the HTTP server of this process is stopping

    def stop_waiting(self, stopping: bool = True) -> None:
        """Held requests of this process answer now: long-polls with no task, job GETs with `?wait=` with the
        job as it is, WebSockets close. Called before the embedded server stops, so that neither its stop nor
        Ctrl-C waits for them (up to `WORKER_POLL_TIMEOUT_SECONDS`); `stop_waiting(False)` before a restart."""
        self.stopping = stopping
        self.storage.interrupt_waits(stopping)

    # -- jobs ---------------------------------------------------------------------------------------------

    def create_routes(self) -> list[str]:
        """`POST <route>` of every blueprint that has a create route."""
        return sorted(f"POST {bp.route}" for bp in self.registry.blueprints.values() if bp.route is not None)

    def create_job(self, blueprint: str, initial_data: dict[str, Any], client: ClientConfig, **options: Any) -> str:
        """Store a new job and schedule its first step; returns its id (the first job's for a repeated
        idempotency key). Options: `idempotency_key`, `webhook_url`, `dispatch_timeout`, `result_timeout`,
        `monthly_attempts` (the client's quota; `QuotaExceeded` when used up)."""
        job_id, _created = self.core.create_job(
            blueprint, initial_data, client, tracing_context=tracing.current_context(), **options
        )
        return job_id

    def visible_job(self, job_id: str, client: Client) -> Job:
        """The job if `client` may see it (its owner or an admin); `JobNotFound` otherwise, so ids of others
        do not leak."""
        job = self.storage.get_job(job_id)
        if job is None or (job.get("client_id") != client.client_id and not client.is_admin):
            raise JobNotFound("job not found", job_id=job_id)
        return job

    def job_view(self, job_id: str, client: Client, wait: float = 0.0) -> dict[str, Any]:
        """What `client` sees of the job; with `wait`, up to that many seconds for it to end first."""
        job = self.visible_job(job_id, client)
        if wait and not JobStatus(job["status"]).is_terminal:
            self.storage.wait_for_job_end(job["id"], wait)
            job = self.storage.get_job(job["id"]) or job
        task = current_task(job)
        lease = self.storage.get_lease(task["task_id"]) if task else None
        view = job_view(job, lease.worker_id if lease else None, lease.progress if lease else None)
        branches = wait_of(job, "branches")
        if branches is not None and job["status"] == JobStatus.WAITING_FOR_PARALLEL_TASKS.value:
            view["branches"] = {"total": branches["total"], "done": self.storage.branches_done(job["id"])}
        approval = wait_of(job, "approval")
        if approval is not None and job["status"] == JobStatus.WAITING_FOR_HUMAN.value:
            request = self.core.approval_request(job["id"], approval)  # type: ignore[arg-type]
            view["approval"] = {
                "integration": request.integration,
                "message": request.message,
                "decisions": request.decisions,
                "deadline": request.deadline,
                "approval_token": request.approval_token,
                "approval_path": request.approval_path,
            }
        return view

    def cancel_job(self, job_id: str, client: Client) -> str:
        """Cancel a non-terminal job of `client` (admins: any job); see `TaskEvents.cancel_job`."""
        self.visible_job(job_id, client)
        return self.events.cancel_job(job_id)

    def authorize_decision(self, job_id: str, *, client: Client | None, token: str | None) -> None:
        """Whether a decision for this job may be posted: by the owning client (or an admin), or with the
        job's approval token. Another client's job is `JobNotFound`; no valid credentials is `Unauthorized`."""
        job = self.storage.get_job(job_id)
        if client is not None and job is not None and (job.get("client_id") == client.client_id or client.is_admin):
            return
        if token and job is not None and self.events.approvals.token_matches(job, token):
            return
        if client is not None:
            raise JobNotFound("job not found", job_id=job_id)
        raise Unauthorized("an approval needs the owner's X-Avtomatika-Token or the job's approval token")

    def decide(self, job_id: str, decision: object) -> None:
        """Apply a human decision (after `authorize_decision`); see `ApprovalEvents.decide`."""
        self.events.approvals.decide(job_id, decision)

    def retry_job(self, job_id: str, client: Client) -> None:
        """Resume a failed or quarantined job of `client` (admins: any job) at its current state."""
        self.visible_job(job_id, client)
        self.events.retry_job(job_id)

    def list_jobs(
        self,
        client: Client,
        *,
        status: str | None = None,
        blueprint: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Jobs `client` may see (admins: all), most recently changed first, filtered by status and blueprint.

        With history enabled the list comes from the history database (every job it recorded, each with its
        id, blueprint, status, state, error and timestamps). Otherwise a page is taken from the status index
        before the client and blueprint filters, so a page may hold fewer than `limit` jobs; `offset` counts
        index entries.
        """
        if self.history is not None:  # history knows every job, not only those still within retention
            owner = None if client.is_admin else client.client_id
            return self.history.store.list_jobs(
                client_id=owner, status=status, blueprint=blueprint, limit=limit, offset=offset
            )
        statuses = [status] if status else list(JOB_STATUSES)
        found: list[Job] = []
        for name in statuses:
            found.extend(self.storage.list_jobs(name, limit + offset, 0))
        found.sort(key=lambda job: job.get("updated_at") or 0.0, reverse=True)
        page = found[offset : offset + limit]
        return [
            job_view(job)
            for job in page
            if (client.is_admin or job.get("client_id") == client.client_id)
            and (blueprint is None or job["blueprint_name"] == blueprint)
        ]

    def job_history(self, job_id: str, client: Client) -> list[dict[str, Any]]:
        """The job's history events in order (SPEC §6) if `client` may see the job; `Unsupported` when
        history is off, `JobNotFound` for an unknown job or another client's, `Unavailable` when the history
        database does not answer."""
        if self.history is None:
            raise Unsupported("history is not enabled: set HISTORY_DATABASE_URI or HISTORY_ENABLED=true")
        owner = self.history.store.job_owner(job_id)
        if owner is None:
            self.visible_job(job_id, client)  # a job history has not recorded yet: storage knows its owner
        elif owner != client.client_id and not client.is_admin:
            raise JobNotFound("job not found", job_id=job_id)
        return self.history.store.job_events(job_id)

    def history_backlog(self) -> int | None:
        """Events this process has not written to history yet (None when history is off): for metrics."""
        return self.history.writer.backlog if self.history is not None else None

    def _refresh_reputations(self, now: float) -> None:
        if self.history is not None:
            refresh_reputations(self.storage, self.history.store, self.config.REPUTATION_WINDOW_SECONDS, now)

    def graph(self, name: str, fmt: str = "dot") -> tuple[bytes, str]:
        """The blueprint's state graph: (content, media type); SVG needs the graphviz binary."""
        blueprint = self.registry.blueprints.get(name)
        if blueprint is None:
            raise BlueprintNotFound("blueprint not found", name=name[:100])
        dot = blueprint.render_graph()
        if fmt == "dot":
            return dot.encode(), "text/vnd.graphviz"
        binary = shutil.which("dot")
        if binary is None:
            raise Unsupported("SVG rendering needs the graphviz binary 'dot', which is not installed")
        svg = subprocess.run([binary, "-Tsvg"], input=dot.encode(), capture_output=True, timeout=20, check=True)
        return svg.stdout, "image/svg+xml"

    # -- operators ----------------------------------------------------------------------------------------

    def list_workers(self) -> list[dict[str, Any]]:
        """Every live worker record."""
        return self.storage.list_workers()

    def dashboard(self) -> dict[str, Any]:
        """Jobs by status, tasks waiting for a worker (in total and by task type), live workers (in total, by
        status and by task type they support) and, with history enabled, the history backlog of every process (dropped
        and failing are this process's)."""
        queues = {task_type: self.storage.queue_length(task_type) for task_type in self.storage.queue_types()}
        workers = self.storage.list_workers()
        by_status: dict[str, int] = {}
        by_type: dict[str, int] = {}
        for worker in workers:
            status = str(worker.get("status") or "idle")
            by_status[status] = by_status.get(status, 0) + 1
            for task_type in worker.get("supported_tasks") or []:
                by_type[str(task_type)] = by_type.get(str(task_type), 0) + 1
        answer: dict[str, Any] = {
            "workers": {"total": len(workers), "by_status": by_status, "by_task_type": by_type},
            "jobs": {"queued": sum(queues.values()), "queues": queues, **self.storage.count_jobs()},
        }
        if self.history is not None:
            writer = self.history.writer
            self.metrics.report_gauges()  # every process's backlog, summed (each reports it every second)
            backlog = int(self.storage.gauge_total("history_backlog", time.time()))
            answer["history"] = {"backlog": backlog, "dropped": writer.dropped, "failing": writer.failing}
        return answer

    def reload_worker_tokens(self) -> int:
        """Read `workers.toml` (when configured) into storage; returns how many workers have their own token.

        Raises `ConfigError` naming file, table and field for a malformed file (the previous tokens stay).
        """
        path = self.config.WORKERS_CONFIG_PATH
        hashes = load_worker_tokens(path) if path else {}
        self.storage.replace_worker_tokens(hashes)
        self._worker_tokens = hashes
        return len(hashes)

    def flush(self) -> None:
        """Delete everything storage holds, then put the worker tokens of `workers.toml` back."""
        self.storage.flush()
        self.reload_worker_tokens()

    def metrics_snapshot(self) -> Snapshot:
        """Every orchestration metric now (counters from all processes, gauges read from storage)."""
        return self.metrics.snapshot()

    def storage_reachable(self) -> bool:
        """True when storage (and in Redis mode the broker, the same Redis) answers."""
        return self.storage.ping()

    # -- workers ------------------------------------------------------------------------------------------

    def worker_token_hash(self, worker_id: str) -> str | None:
        """The worker's own token hash, or None (then the global token applies)."""
        return self._token_lookup(self.storage.worker_token_hash, worker_id)

    def worker_token_owner(self, token_hash: str) -> str | None:
        """The worker whose own token has this hash, or None."""
        return self._token_lookup(self.storage.worker_token_owner, token_hash)

    def _token_lookup(self, lookup: Callable[[str], str | None], key: str) -> str | None:
        """`lookup(key)`; when storage lost the token table (Redis restarted without persistence, FLUSHDB),
        first put back the table this process loaded last (workers.toml at start or at the last reload)."""
        try:
            return lookup(key)
        except TokensNotLoaded:
            logger.warning("the worker token table is missing from storage: restoring it")
            if self._worker_tokens is None:
                self.reload_worker_tokens()
            else:
                self.storage.replace_worker_tokens(self._worker_tokens)
            return lookup(key)

    def register_worker(self, record: dict[str, Any]) -> None:
        """Store a worker's registration; `reputation` and `registered_at` of a live record are kept."""
        now = time.time()
        existing = self.storage.get_workers([record["worker_id"]])[0] or {}
        before, instance = existing.get("instance_id"), record.get("instance_id")
        if before and instance and before != instance:
            logger.warning(
                "worker id %r registered by %s while %s still holds it (last seen %.0f s ago): two workers share "
                "one id, so their tasks, heartbeats and cancellations mix; give each its own worker_id",
                record["worker_id"],
                instance,
                before,
                now - float(existing.get("last_seen", now)),
            )
        record.update(
            reputation=float(existing.get("reputation", 1.0)),
            registered_at=existing.get("registered_at", now),
            last_seen=now,
        )
        self.storage.save_worker(record, self.dispatcher.worker_ttl, now)
        self.registry.stream.emit([WorkerEvent(WORKER_REGISTERED, record["worker_id"], now, worker_snapshot(record))])

    def heartbeat(self, worker_id: str, updates: dict[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
        """Refresh a worker (and apply `updates`); returns (its record, task ids cancelled since last time)."""
        record, cancels = self.dispatcher.heartbeat(worker_id, updates)
        if record is None:
            raise WorkerNotFound("unknown worker: register first", worker_id=worker_id)
        if updates:
            self.registry.stream.emit([WorkerEvent(WORKER_STATUS_UPDATE, worker_id, snapshot=worker_snapshot(record))])
        return record, cancels

    def next_task(self, worker_id: str) -> dict[str, Any] | None:
        """Long-poll: the next task this worker may run, or None after `WORKER_POLL_TIMEOUT_SECONDS`."""
        storage, dispatcher = self.storage, self.dispatcher
        worker = storage.get_workers([worker_id])[0]
        if worker is None:
            raise WorkerNotFound("unknown worker: register first", worker_id=worker_id)
        types = list(worker.get("supported_tasks") or [])
        poll = f"{worker_id}|{uuid.uuid4().hex[:12]}"
        deadline = time.time() + self.config.WORKER_POLL_TIMEOUT_SECONDS
        registered = False
        try:
            while True:
                # Claims a task, or else registers this poll as waiting, in one atomic step: a task
                # dispatched right after wakes it.
                claim = dispatcher.claim(worker, poll, deadline)
                if claim is not None:
                    registered = False  # the claim removed the registration
                    payload = self._task_payload(claim)
                    if payload is not None:
                        if claim.remaining:
                            dispatcher.wake_for(claim.task_type, None, "default", exclude=worker_id)
                        return payload
                    continue
                registered = True
                remaining = deadline - time.time()
                if remaining <= 0 or self.stopping:
                    return None
                if storage.wait_for_wake(poll, remaining):
                    worker = storage.get_workers([worker_id])[0] or worker
                    now_types = list(worker.get("supported_tasks") or [])
                    if now_types != types:  # a heartbeat changed the task types: poll for the new ones
                        storage.set_poller(poll, types, None)
                        types = now_types
        finally:
            if registered:
                storage.set_poller(poll, types, None)

    def _task_payload(self, claim: Claim) -> dict[str, Any] | None:
        """The task a claim handed out, or None when its job moved on meanwhile (the lease is then dropped)."""
        job = claim.job
        task: Any = None
        if job is not None and branch_id_of(claim.task_id):  # a fan-out branch: its record waits, not the job
            if job["status"] == JobStatus.WAITING_FOR_PARALLEL_TASKS.value:
                task = claim.branch
        elif job is not None and job["status"] == JobStatus.WAITING_FOR_WORKER.value:
            task = current_task(job)
        if job is None or task is None or task.get("task_id") != claim.task_id:
            self.storage.drop_lease(claim.task_id)
            return None
        self._task_started(job, task, claim.worker_id)
        return {
            "job_id": claim.job_id,
            "task_id": claim.task_id,
            "type": claim.task_type,
            "params": task.get("params") or {},
            "priority": task.get("priority", 0.0),
            "deadline": claim.deadline,
            "attempt": task.get("attempt", 1),
            "tracing_context": job.get("tracing_context") or {},
        }

    def accept_result(self, job_id: str, task_id: str, worker_id: str, result: dict[str, Any]) -> str:
        """Apply a worker's result (SPEC §4); returns the answer status. See `TaskEvents.accept_result`.

        With tracing on, the result is handled in a span of the job's trace (whatever trace the request had).
        """
        if not self.tracing:
            return self.events.accept_result(job_id, task_id, worker_id, result)
        job = self.storage.get_job(job_id)
        with tracing.span("avtomatika.result", job and job.get("tracing_context"), job_id=job_id, task_id=task_id):
            return self.events.accept_result(job_id, task_id, worker_id, result)

    def record_progress(self, job_id: str, task_id: str, worker_id: str, progress: float | None, message: str) -> bool:
        """Store a progress event of the task's lease holder; `job_id` "" finds the job from the lease."""
        if not job_id:
            lease = self.storage.get_lease(task_id)
            job_id = lease.job_id if lease else ""
        if not job_id:
            return False
        return self.events.record_progress(job_id, task_id, worker_id, progress, message)

    def socket_commands(self, worker_id: str, timeout: float) -> list[dict[str, Any]]:
        """Mark the worker's WebSocket as connected, then wait up to `timeout` for commands to push to it."""
        self.storage.set_ws_connected(worker_id, 5.0)
        return self.storage.pop_commands(worker_id, timeout)

    def socket_closed(self, worker_id: str) -> None:
        """The worker's WebSocket closed."""
        self.storage.set_ws_connected(worker_id, None)

    # -- what the Celery tasks run ------------------------------------------------------------------------

    def run_step(self, job_id: str, seq: int, *, redelivered: bool = False) -> str:
        """Run one step (the `avtomatika.step` task); `redelivered` when the broker delivers it again."""
        return self.core.run_step(job_id, seq, redelivered=redelivered)

    def run_native_task(self, job_id: str, task_id: str, task_type: str, params: dict[str, Any]) -> str:
        """Run a native task type's function and report its outcome; returns the answer or why it did not run.

        A native task runs at most once at a time: it runs only while Celery holds its lease (the job still
        waits for this attempt) and under a lock for the lease's lifetime, so a redelivery of a long task's
        message (after the broker's visibility timeout) does not start it again. A lost message is not
        redelivered on purpose: the lease expires and the attempt is retried with a new task id.
        """
        lease = self.storage.get_lease(task_id)
        if lease is None or lease.worker_id != NATIVE_WORKER:
            return "not run: the attempt is over (its lease ended)"
        token = uuid.uuid4().hex
        lock = f"native:{task_id}"
        if not self.storage.acquire_lock(lock, token, max(lease.deadline - time.time(), 1.0)):
            return "not run: this attempt is already running"
        try:
            job = self.storage.get_job(job_id)
            task = current_task(job) if job is not None else None
            branch = branch_id_of(task_id)
            if branch and job is not None:
                task = self.storage.branch(job_id, branch)  # type: ignore[assignment]
            attempt = task.get("attempt", 1) if task else 1
            if job is not None and task is not None:
                self._task_started(job, dict(task), NATIVE_WORKER)
            available = {"params": params, "job_id": job_id, "task_id": task_id, "attempt": attempt}
            outcome = native_outcome(self.registry.native_tasks.get(task_type), task_type, available)
            try:
                return self.events.accept_result(job_id, task_id, NATIVE_WORKER, outcome.to_payload())
            except AvtomatikaError as exc:  # the job moved on (cancelled, timed out) or is gone
                return exc.message
        finally:
            self.storage.release_lock(lock, token)

    def _task_started(self, job: Job, task: dict[str, Any], worker_id: str) -> None:
        """A worker (or Celery, for a native task type) took an attempt: a stream event between commits."""
        if self.registry.stream.wants(TASK_STARTED):
            fields = {"task_id": task["task_id"], "attempt": int(task.get("attempt", 1)), "worker_id": worker_id}
            details = {"task_type": task["task_type"]}
            self.registry.stream.emit([job_event(job, TASK_STARTED, details=details, **fields)])

    def park_branch(self, job_id: str, branch_id: str, context: str) -> dict[str, Any] | None:
        """A fan-out's chord member parks itself (see `BranchEvents.park`)."""
        return self.events.branches.park(job_id, branch_id, context)

    def aggregate(self, job_id: str, group_id: str) -> bool:
        """The chord body: the fan-in of a fan-out (see `BranchEvents.aggregate`)."""
        return self.events.branches.aggregate(job_id, group_id)

    def sweep(self, now: float | None = None) -> int:
        """One run of the periodic sweep (-1 when another sweeper holds the lock)."""
        return self.sweeper.run_once(now)
