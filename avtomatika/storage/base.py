"""The storage port: domain-level operations whose docstrings say what must be atomic."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any

from ..job import Job
from ..ops import JobChanges
from ..quotas import Quota
from ..tasks import Claim, Lease, QueueEntry


def dumps(value: Any) -> str:
    """Compact JSON, the one serialisation every backend uses (so both behave alike). `NaN` and `Infinity`
    are refused (`ValueError`): they are not JSON, and a stored one would break every reader of the record."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def loads(text: str | bytes) -> Any:
    """Inverse of `dumps`."""
    return json.loads(text)


class StorageBackend(ABC):
    """Where job records, idempotency keys and locks live.

    Every method that checks and changes is one atomic operation in the backend; callers never
    read-modify-write. Job records are JSON-compatible dicts with an integer `seq` that grows by one
    with every committed change.
    """

    @abstractmethod
    def create_job(
        self,
        job: Job,
        *,
        idempotency_key: str | None = None,
        idempotency_ttl: int = 86400,
        watch_until: float | None = None,
        publish: tuple[str, str] | None = None,
        quota: Quota | None = None,
    ) -> str:
        """Store a new job (its `seq` is 0) and return its id.

        With `publish` (list key, message) the first step's broker message is pushed in the same atomic
        operation (Redis mode only; backends that cannot do this raise `NotImplementedError`).

        With `watch_until` the job also goes on the stall watch list (see `commit_job`).
        Atomic: with an `idempotency_key` (already scoped to the client by the caller), a key seen before
        returns the first job's id and stores nothing; two concurrent creates with one key make one job.
        With a `quota`, the create counts against it in the same atomic operation (after the idempotency
        check: a repeat costs nothing); a full quota raises `QuotaExceeded` and stores nothing. The count
        lives until `quota.expires_at`, across restarts when the backend persists.
        """

    @abstractmethod
    def get_job(self, job_id: str) -> Job | None:
        """The job record, or None."""

    def commit_job(
        self,
        job: Job,
        expected_seq: int,
        *,
        retention_seconds: int | None = None,
        watch_until: float | None = None,
    ) -> bool:
        """Compare-and-set: store `job` with `seq = expected_seq + 1` only if the stored seq is `expected_seq`.

        Returns False (and stores nothing) when another writer committed first. On success `job["seq"]`
        is updated in place. `retention_seconds` makes the record expire (used for terminal jobs).
        In the same atomic operation the job is put on the stall watch list until `watch_until` (epoch
        seconds), or taken off it when `watch_until` is None.
        """
        result = self.commit_job_changes(
            job, expected_seq, JobChanges(), retention_seconds=retention_seconds, watch_until=watch_until
        )
        return result == "ok"

    @abstractmethod
    def commit_job_changes(
        self,
        job: Job,
        expected_seq: int,
        changes: JobChanges,
        *,
        retention_seconds: int | None = None,
        watch_until: float | None = None,
    ) -> str:
        """`commit_job` plus the operations of `changes` (`avtomatika.ops`), all in one atomic operation.

        Every check runs before the first write. Returns "ok", "conflict" (seq moved), "invalid" (a number
        to index by is not finite), "lease" (a `HoldsLease` failed) or "gone" (a required `Withdraw` found
        the task claimed meanwhile). Nothing is written unless "ok".
        """

    @abstractmethod
    def list_jobs(self, status: str, limit: int = 100, offset: int = 0) -> list[Job]:
        """Jobs in `status`, most recently changed first (a page of the status index)."""

    @abstractmethod
    def count_jobs(self) -> dict[str, int]:
        """How many jobs each status holds (terminal ones until their retention ends)."""

    def purge_expired(self, now: float) -> int:
        """Drop entries that have expired (the periodic sweep calls it). Redis expires keys itself, but not
        members of sorted sets: the Redis backend drops poll entries past their end (those of an API process
        that crashed mid-poll); the memory backend removes everything Redis would have let expire."""
        return 0

    def trim_job_index(self, status: str, before: float) -> int:
        """Forget index entries of `status` last changed before `before` (records past their retention);
        returns how many. Backends whose index cannot go stale do nothing."""
        return 0

    def interrupt_waits(self, interrupted: bool = True) -> None:  # noqa: B027  (a no-op unless overridden)
        """While interrupted, every blocking wait of this process (`wait_for_job_end`, `wait_for_wake`,
        `pop_commands`) returns at once as if it timed out, so a server that stops is not held by long-polls.
        Only in-process waits need it (MemoryStorage); a Redis wait ends with its own timeout."""

    @abstractmethod
    def wait_for_job_end(self, job_id: str, timeout: float) -> bool:
        """Block up to `timeout` seconds until a commit with `notify_end` for this job; True when woken.

        Callers check the job's status before waiting (an end committed before the wait is not signalled
        again, except for a few seconds in Redis mode).
        """

    @abstractmethod
    def stalled_jobs(self, now: float, limit: int = 100) -> list[str]:
        """Ids of jobs whose stall watch deadline is before `now` (oldest first)."""

    @abstractmethod
    def watch_job(self, job_id: str, watch_until: float | None) -> None:
        """Move a job's stall watch deadline, or drop it from the watch list with None."""

    # -- tasks --------------------------------------------------------------------------------------------

    @abstractmethod
    def claim_task(
        self,
        worker_id: str,
        task_types: list[str],
        caps: dict[str, Any],
        now: float,
        worker_ttl: float,
        poll: str = "",
        poll_until: float = 0.0,
        max_active: int = 0,
    ) -> Claim | None:
        """Atomically take the best queued task this worker may run (highest priority, then oldest).

        Creates the lease: held until `now + timeout` (hard) and expiring earlier when the worker stops
        heart-beating (`now + worker_ttl`, moved by `heartbeat_worker`). The claim carries the job record
        and how many tasks are left in that queue that the caller should wake another poll for (a backend
        may wake one itself for tasks without requirements and report 0). With a `poll` id: when nothing
        is eligible, the poll is registered as polling the types until `poll_until` in the same operation
        (so a task dispatched right after wakes it); when a task is taken, the poll's registration is removed.
        With `max_active` > 0 a worker already holding that many leases gets nothing (checked atomically).
        """

    @abstractmethod
    def get_lease(self, task_id: str) -> Lease | None:
        """The live lease of a task, or None."""

    @abstractmethod
    def record_lease_progress(self, task_id: str, worker_id: str, progress: dict[str, Any]) -> bool:
        """Store a progress event on the task's lease if `worker_id` holds it (atomic check-and-set; the job
        record is not written). False when the lease is gone or held by another worker."""

    def get_leases(self, task_ids: list[str]) -> list[Lease | None]:
        """The leases of several tasks, in order (backends override it with one round trip)."""
        return [self.get_lease(task_id) for task_id in task_ids]

    @abstractmethod
    def expired_leases(self, now: float, limit: int = 100) -> list[Lease]:
        """Leases whose expiry is before `now` (the sweep turns them into TRANSIENT_ERROR failures)."""

    @abstractmethod
    def drop_lease(self, task_id: str) -> None:
        """Delete a lease whose job no longer waits for it (orphaned by retention or a lost race)."""

    @abstractmethod
    def result_answer(self, task_id: str, worker_id: str) -> str | None:
        """The answer given when this worker's result for this task was accepted (repeats get it again)."""

    @abstractmethod
    def queue_length(self, task_type: str) -> int:
        """How many tasks of this type wait for a worker."""

    @abstractmethod
    def queue_types(self) -> list[str]:
        """Task types that have a queue (possibly empty)."""

    @abstractmethod
    def queue_classes(self, task_type: str) -> list[str]:
        """The queues (requirement classes) of a task type that hold tasks; an emptied one is forgotten."""

    # -- workers ------------------------------------------------------------------------------------------

    @abstractmethod
    def save_worker(self, worker: dict[str, Any], ttl: float, now: float) -> None:
        """Store a worker record (registration) alive for `ttl` seconds."""

    @abstractmethod
    def get_workers(self, worker_ids: list[str]) -> list[dict[str, Any] | None]:
        """Live worker records in the order asked (None for unknown or expired ones)."""

    @abstractmethod
    def list_workers(self) -> list[dict[str, Any]]:
        """Every live worker record."""

    @abstractmethod
    def heartbeat_worker(
        self, worker_id: str, ttl: float, now: float, updates: dict[str, Any] | None
    ) -> tuple[dict[str, Any] | None, list[str]]:
        """Atomically refresh a worker: TTL, optional field updates (`status`, `load`, `supported_tasks`,
        `hot_cache`, ...: each replaces the registered value), the expiry of its leases.

        Returns (the record or None when the worker is unknown, task ids cancelled since the last call).
        """

    @abstractmethod
    def set_reputations(self, values: dict[str, float]) -> None:
        """Set `reputation` (0..1, computed by the orchestrator) of each live worker in `values`; unknown or
        expired workers are skipped and no TTL changes. Atomic per worker (never races a heartbeat)."""

    @abstractmethod
    def active_tasks(self, worker_ids: list[str]) -> list[int]:
        """How many leases each worker holds."""

    @abstractmethod
    def expired_workers(self, now: float) -> list[str]:
        """Workers whose TTL ran out since the last call (each reported once)."""

    @abstractmethod
    def set_poller(self, worker_id: str, task_types: list[str], until: float | None) -> None:
        """Mark a worker as long-polling for these types until `until` (None: it stopped)."""

    @abstractmethod
    def pollers(self, task_type: str, now: float) -> list[str]:
        """Open long-polls (`worker_id|poll_id`) for this type right now."""

    @abstractmethod
    def sample_pollers(self, task_type: str, now: float, size: int, start: float) -> list[str]:
        """Up to `size` open long-polls for this type, beginning at fraction `start` (0..1) of them."""

    @abstractmethod
    def wake(self, worker_id: str) -> None:
        """Wake the worker's long-poll (if any)."""

    @abstractmethod
    def wait_for_wake(self, worker_id: str, timeout: float) -> bool:
        """Block up to `timeout` seconds for a `wake`; True when woken."""

    @abstractmethod
    def push_command(self, worker_id: str, command: dict[str, Any]) -> None:
        """Queue a command for the worker's WebSocket."""

    @abstractmethod
    def pop_commands(self, worker_id: str, timeout: float) -> list[dict[str, Any]]:
        """Wait up to `timeout` for commands for the worker's WebSocket and take them all."""

    @abstractmethod
    def set_ws_connected(self, worker_id: str, ttl: float | None) -> None:
        """Mark the worker's WebSocket as connected for `ttl` seconds (None: disconnected)."""

    @abstractmethod
    def ws_connected(self, worker_id: str) -> bool:
        """Whether a WebSocket of this worker is connected to some API process."""

    @abstractmethod
    def replace_worker_tokens(self, hashes: dict[str, str]) -> None:
        """Atomically replace the table of individual worker token hashes (workers.toml)."""

    @abstractmethod
    def worker_token_hash(self, worker_id: str) -> str | None:
        """The individual token hash of a worker, or None (then the global token applies).

        Raises `TokensNotLoaded` when no table was ever stored (or storage lost it): "no individual token"
        must never be concluded from a missing table (`worker_token_owner` likewise)."""

    @abstractmethod
    def worker_token_owner(self, token_hash: str) -> str | None:
        """The worker whose individual token has this hash, or None."""

    @abstractmethod
    def next_counter(self, name: str) -> int:
        """Atomically increment and return a named counter (round robin)."""

    @abstractmethod
    def count_delivery(self, job_id: str, seq: int, ttl_seconds: float) -> int:
        """Atomically count one more delivery of the step `(job_id, seq)` and return the count so far; the
        count expires `ttl_seconds` after its last increment (poison-step detection)."""

    # -- coordination -------------------------------------------------------------------------------------

    @abstractmethod
    def acquire_lock(self, name: str, token: str, ttl_seconds: float) -> bool:
        """Take the named lock for `ttl_seconds` if nobody holds it (SET NX PX)."""

    @abstractmethod
    def release_lock(self, name: str, token: str) -> bool:
        """Release the lock only if `token` still holds it (compare-and-delete)."""

    # -- fan-out branches ---------------------------------------------------------------------------------

    @abstractmethod
    def branch(self, job_id: str, branch_id: str) -> dict[str, Any] | None:
        """The record of one branch of a fan-out (its task, current attempt), or None."""

    def branch_and_job(self, job_id: str, branch_id: str) -> tuple[dict[str, Any] | None, Job | None]:
        """`branch(job_id, branch_id)` and `get_job(job_id)`, read together (one round trip where it counts)."""
        return self.branch(job_id, branch_id), self.get_job(job_id)

    @abstractmethod
    def branch_records(self, job_id: str) -> dict[str, dict[str, Any]]:
        """Every branch record of a fan-out (branch id -> record)."""

    @abstractmethod
    def branch_results(self, job_id: str) -> dict[str, dict[str, Any]]:
        """The final outcomes of a fan-out's branches so far (branch id -> result)."""

    @abstractmethod
    def branches_done(self, job_id: str) -> int:
        """How many branches of a fan-out have their final outcome."""

    @abstractmethod
    def record_branch(
        self,
        job_id: str,
        branch_id: str,
        task_id: str,
        worker_id: str,
        answer: str,
        result: dict[str, Any] | None,
        next_attempt: dict[str, Any] | None = None,
        enqueue: QueueEntry | None = None,
        native_lease: Lease | None = None,
        publish: tuple[str, str] | None = None,
    ) -> tuple[str, int, str]:
        """Atomically: check that `worker_id` holds the lease of `task_id` and that the branch still runs
        that attempt; end the lease (remembering `answer`); then record the final `result`, or store
        `next_attempt` (queued with `enqueue`, or leased to Celery with `native_lease` and, in Redis mode,
        its Celery message `publish` = (list key, message) pushed in the same step).

        Returns (verdict "ok" / "lease" / "stale", branches done, the parked chord context or ""); a returned
        context is taken (deleted): its caller completes the chord member.
        """

    @abstractmethod
    def park_branch(self, job_id: str, branch_id: str, context: str) -> dict[str, Any] | None:
        """Park a chord member's request context, unless the branch already has its outcome (returned)."""

    @abstractmethod
    def parked_branches(self, job_id: str) -> dict[str, str]:
        """Parked chord contexts of a fan-out (branch id -> context JSON)."""

    @abstractmethod
    def unpark_branch(self, job_id: str, branch_id: str) -> None:
        """Forget a parked context once its chord member was completed."""

    @abstractmethod
    def drop_branches(self, job_id: str) -> None:
        """Forget a fan-out's branch records, outcomes and parked contexts (after the fan-in)."""

    # -- completion webhooks --------------------------------------------------------------------------------

    @abstractmethod
    def claim_webhook(self, job_id: str, now: float, lease: float) -> int | None:
        """Take a due webhook delivery for `lease` seconds (no other process delivers it meanwhile);
        returns its attempt number (1, 2, ...), or None when it is not due or not queued."""

    @abstractmethod
    def finish_webhook(self, job_id: str, retry_at: float | None) -> None:
        """After an attempt: forget the delivery (`retry_at` None: delivered, or given up), or retry then."""

    @abstractmethod
    def due_webhooks(self, now: float, limit: int = 100) -> list[str]:
        """Job ids whose webhook delivery is due."""

    @abstractmethod
    def shared_secret(self, name: str) -> str:
        """A random secret every process of this storage shares, created on first use (atomic: two processes
        asking at once get the same value). Used to derive per-job approval tokens without storing them."""

    @abstractmethod
    def add_to_counters(self, amounts: dict[str, float]) -> None:
        """Add each amount to the shared counter of that name (atomic per counter; every process of this
        storage adds to the same counters). Metrics keep their counters and histogram buckets here."""

    @abstractmethod
    def counters(self) -> dict[str, float]:
        """Every counter `add_to_counters` made, by name."""

    @abstractmethod
    def report_gauge(self, name: str, member: str, value: float, expires: float) -> None:
        """Set one process's (`member`) value of the gauge `name`, counted until the epoch time `expires`
        (a process that stops reporting, e.g. after a crash, drops out of the sum)."""

    @abstractmethod
    def gauge_total(self, name: str, now: float) -> float:
        """The sum of the gauge's unexpired values over every process (expired ones are removed)."""

    @abstractmethod
    def ping(self) -> bool:
        """True when the backend answers."""

    @abstractmethod
    def flush(self) -> None:
        """Delete everything this backend stores (debug and tests only)."""

    def close(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Release connections; the default does nothing."""
