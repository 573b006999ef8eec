"""In-process storage: a full peer of the Redis backend for the embedded default and for tests."""

from __future__ import annotations

import dataclasses
import math
import secrets
import threading
import time
from collections import defaultdict
from typing import Any

from ..errors import QuotaExceeded, TokensNotLoaded
from ..job import JOB_STATUSES, Job, pack_job, unpack_job
from ..ops import (
    CreateJob,
    EndLease,
    Enqueue,
    GrantLease,
    HoldsLease,
    JobChanges,
    NotifyCancel,
    Op,
    PublishStep,
    QueueWebhook,
    StoreBranches,
    Withdraw,
)
from ..quotas import Quota
from ..tasks import Claim, Lease, QueueEntry, cancel_command, eligible, parse_member
from .base import StorageBackend, dumps, loads

ANSWER_TTL = 86400


class MemoryStorage(StorageBackend):
    """Thread-safe in-memory storage; records are kept serialised so no caller shares a live dict."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        # Callers of `wait_for_job_end` per job: a commit wakes only those of its own job. (One condition for
        # everything made every commit wake every waiting job GET, each decoding its job: with 64 jobs
        # followed at once that was hundreds of wake-ups and JSON decodes per job.)
        self._end_waits: dict[str, tuple[threading.Condition, int]] = {}
        self._interrupted = False  # `interrupt_waits`: the server of this process is stopping
        self._jobs: dict[str, tuple[int, str, float | None]] = {}
        self._idempotency: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, tuple[str, float]] = {}
        self._watch: dict[str, float] = {}
        self._queues: dict[str, dict[str, float]] = defaultdict(dict)
        self._classes: dict[str, dict[str, dict[str, Any] | None]] = defaultdict(dict)
        self._leases: dict[str, Lease] = {}
        self._lease_expiry: dict[str, float] = {}
        self._answers: dict[str, tuple[str, str, float]] = {}
        self._workers: dict[str, tuple[dict[str, Any], float]] = {}
        self._cancels: dict[str, set[str]] = defaultdict(set)
        self._pollers: dict[str, dict[str, float]] = defaultdict(dict)
        self._wakes: dict[str, int] = defaultdict(int)
        self._commands: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._secrets: dict[str, str] = {}
        self._tokens_loaded = False
        self._signalled_at: dict[str, float] = {}  # last wake-up or command per poll / worker
        self._webhooks: dict[str, tuple[float, int]] = {}  # job id -> (due, attempts)
        self._branches: dict[str, dict[str, str]] = defaultdict(dict)  # job id -> branch id -> record JSON
        self._branch_results: dict[str, dict[str, str]] = defaultdict(dict)
        self._parked: dict[str, dict[str, str]] = defaultdict(dict)
        self._ws: dict[str, float] = {}
        self._tokens: dict[str, str] = {}
        self._counters: dict[str, int] = defaultdict(int)
        self._deliveries: dict[str, tuple[int, float]] = {}  # "job id:seq" -> (count, expires)
        self._quotas: dict[str, tuple[int, float]] = {}  # quota key -> (creates, expires)
        self._metrics: dict[str, float] = defaultdict(float)
        self._gauges: dict[str, dict[str, tuple[float, float]]] = {}

    @staticmethod
    def _alive(expires: float | None, now: float) -> bool:
        return expires is None or expires > now

    def _set_watch(self, job_id: str, watch_until: float | None) -> None:
        if watch_until is None:
            self._watch.pop(job_id, None)
        else:
            self._watch[job_id] = watch_until

    # -- jobs ---------------------------------------------------------------------------------------------

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
        if publish is not None:
            raise NotImplementedError("MemoryStorage cannot publish broker messages")
        now = time.time()
        job["seq"] = 0
        document = pack_job(job)
        with self._lock:
            if idempotency_key is not None:
                existing = self._idempotency.get(idempotency_key)
                if existing and existing[1] > now:
                    return existing[0]
            if quota is not None:
                used, expires = self._quotas.get(quota.key, (0, 0.0))
                used = used if expires > now else 0
                if used >= quota.limit:
                    raise QuotaExceeded("monthly job quota exhausted", quota.retry_after(now), limit=quota.limit)
                self._quotas[quota.key] = (used + 1, float(quota.expires_at))
            if idempotency_key is not None:
                self._idempotency[idempotency_key] = (job["id"], now + idempotency_ttl)
            self._jobs[job["id"]] = (0, document, None)
            self._set_watch(job["id"], watch_until)
            return str(job["id"])

    def get_job(self, job_id: str) -> Job | None:
        with self._lock:
            entry = self._jobs.get(job_id)
            if entry is None or not self._alive(entry[2], time.time()):
                return None
        job: Job = unpack_job(entry[1], job_id, entry[0])
        return job

    def commit_job_changes(
        self,
        job: Job,
        expected_seq: int,
        changes: JobChanges,
        *,
        retention_seconds: int | None = None,
        watch_until: float | None = None,
    ) -> str:
        if changes.of(PublishStep):
            raise NotImplementedError("MemoryStorage cannot publish broker messages")
        previous = job.get("seq")
        job["seq"] = expected_seq + 1
        document = pack_job(job)
        now = time.time()
        with self._lock:
            entry = self._jobs.get(job["id"])
            outcome = "ok"
            if entry is None or entry[0] != expected_seq or not self._alive(entry[2], now):
                outcome = "conflict"
            else:
                outcome = self._check(changes, watch_until)
            if outcome != "ok":
                job["seq"] = previous
                return outcome
            expires = now + retention_seconds if retention_seconds else None
            self._jobs[job["id"]] = (job["seq"], document, expires)
            self._set_watch(job["id"], watch_until)
            for op in changes.ops:
                self._apply(op)
            self._job_written(job["id"])
            return "ok"

    def _check(self, changes: JobChanges, watch_until: float | None) -> str:
        """Every check of a commit, before its first write (see `avtomatika.ops`)."""
        if not changes.numbers_are_finite() or (watch_until is not None and not math.isfinite(watch_until)):
            return "invalid"
        for op in changes.ops:
            if isinstance(op, HoldsLease):
                lease = self._leases.get(op.task_id)
                if lease is None or lease.worker_id != op.worker_id:
                    return "lease"
            elif isinstance(op, Withdraw) and op.required and op.member not in self._queues[op.queue]:
                return "gone"
            elif isinstance(op, CreateJob) and (op.job["id"] in self._jobs or op.publish is not None):
                return "conflict"
        return "ok"

    def _apply(self, op: Op) -> None:
        if isinstance(op, EndLease):
            lease = self._leases.pop(op.task_id, None)
            self._lease_expiry.pop(op.task_id, None)
            if lease is not None:
                self._remember_answer(op.task_id, lease.worker_id, op.answer)
        elif isinstance(op, NotifyCancel):
            self._cancels[op.worker_id].add(op.task_id)
            self._commands[op.worker_id].append(cancel_command(op.task_id, op.job_id))
            self._signalled_at[op.worker_id] = time.time()
        elif isinstance(op, Enqueue):
            entry = op.entry
            self._queues[entry.queue][entry.member] = entry.score
            self._classes[entry.task_type][entry.queue] = entry.requirements
        elif isinstance(op, Withdraw):
            self._queues[op.queue].pop(op.member, None)
            if not self._queues[op.queue]:
                self._classes[op.queue.partition("#")[0]].pop(op.queue, None)
        elif isinstance(op, CreateJob):
            child = dict(op.job, seq=0)
            self._jobs[child["id"]] = (0, pack_job(child), None)
            self._set_watch(child["id"], op.watch_until)
        elif isinstance(op, StoreBranches):
            self._branches[op.job_id].update({b: dumps(r) for b, r in op.branches.items()})
        elif isinstance(op, QueueWebhook):
            self._webhooks.setdefault(op.job_id, (op.due, 0))
        elif isinstance(op, GrantLease):
            self._leases[op.lease.task_id] = op.lease
            self._lease_expiry[op.lease.task_id] = op.lease.deadline

    def _remember_answer(self, task_id: str, worker_id: str, answer: str) -> None:
        """Keep the answer for repeats of a result for `ANSWER_TTL` (Redis: a key with that TTL)."""
        now = time.time()
        if len(self._answers) > 10_000:
            for stale in [t for t, (_, _, at) in self._answers.items() if at < now - ANSWER_TTL]:
                del self._answers[stale]
        self._answers[task_id] = (worker_id, answer, now)

    def _live_jobs(self) -> list[Job]:
        now = time.time()
        with self._lock:
            entries = [(i, seq, doc) for i, (seq, doc, expires) in self._jobs.items() if self._alive(expires, now)]
        return [unpack_job(doc, job_id, seq) for job_id, seq, doc in entries]

    def purge_expired(self, now: float) -> int:
        """Drop what Redis would have let expire: records past their retention, idempotency keys, wake-ups
        of polls that ended (2 min), commands and cancel notices nobody fetched (1 h / 24 h), remembered
        answers (24 h), long-polls that ended. Returns how many entries went."""
        with self._lock:
            gone = 0
            for job_id in [j for j, (_, _, expires) in self._jobs.items() if not self._alive(expires, now)]:
                del self._jobs[job_id]
                self._watch.pop(job_id, None)
                self._job_written(job_id)
                gone += 1
            for key in [k for k, (_, expires) in self._idempotency.items() if expires <= now]:
                del self._idempotency[key]
                gone += 1
            for task_id in [t for t, (_, _, at) in self._answers.items() if at < now - ANSWER_TTL]:
                del self._answers[task_id]
                gone += 1
            for name, at in list(self._signalled_at.items()):
                if at < now - 120 and name in self._wakes:
                    del self._wakes[name]
                    gone += 1
                if at < now - 3600 and name in self._commands:
                    del self._commands[name]
                    gone += 1
                if at < now - 86400:
                    self._cancels.pop(name, None)
                    del self._signalled_at[name]
            for key in [k for k, (_, expires) in self._deliveries.items() if expires <= now]:
                del self._deliveries[key]
                gone += 1
            for polls in self._pollers.values():
                for poll in [p for p, until in polls.items() if until is None or until < now]:
                    del polls[poll]
                    gone += 1
            return gone

    def list_jobs(self, status: str, limit: int = 100, offset: int = 0) -> list[Job]:
        found = [job for job in self._live_jobs() if job["status"] == status]
        found.sort(key=lambda job: job.get("updated_at") or 0.0, reverse=True)
        return found[offset : offset + limit]

    def count_jobs(self) -> dict[str, int]:
        counts = dict.fromkeys(JOB_STATUSES, 0)
        for job in self._live_jobs():
            counts[job["status"]] += 1
        return counts

    def interrupt_waits(self, interrupted: bool = True) -> None:
        with self._lock:
            self._interrupted = interrupted
            if interrupted:
                self._changed.notify_all()
                for condition, _ in self._end_waits.values():
                    condition.notify_all()

    def wait_for_job_end(self, job_id: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            condition, count = self._end_waits.get(job_id) or (threading.Condition(self._lock), 0)
            self._end_waits[job_id] = (condition, count + 1)
            try:
                while True:
                    entry = self._jobs.get(job_id)
                    if entry is None:
                        return False
                    if loads(entry[1])["status"] in ("finished", "failed", "cancelled", "quarantined"):
                        return True
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._interrupted:
                        return False
                    condition.wait(remaining)
            finally:
                condition, count = self._end_waits[job_id]
                if count > 1:
                    self._end_waits[job_id] = (condition, count - 1)
                else:
                    del self._end_waits[job_id]

    def _job_written(self, job_id: str) -> None:
        """Wake the `wait_for_job_end` callers of this job (the caller holds the lock)."""
        waits = self._end_waits.get(job_id)
        if waits is not None:
            waits[0].notify_all()

    def stalled_jobs(self, now: float, limit: int = 100) -> list[str]:
        with self._lock:
            due = sorted((deadline, job_id) for job_id, deadline in self._watch.items() if deadline <= now)
        return [job_id for _, job_id in due[:limit]]

    def watch_job(self, job_id: str, watch_until: float | None) -> None:
        with self._lock:
            self._set_watch(job_id, watch_until)

    # -- tasks --------------------------------------------------------------------------------------------

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
        with self._lock:
            if max_active and sum(lease.worker_id == worker_id for lease in self._leases.values()) >= max_active:
                for task_type in task_types if poll else []:
                    self._pollers[task_type].pop(poll, None)
                return None
            best: tuple[float, str, str, str] | None = None
            for task_type in task_types:
                for queue, req in self._classes.get(task_type, {}).items():
                    entries = self._queues.get(queue)
                    if not entries or not eligible(req, caps, task_type):
                        continue
                    member, score = min(entries.items(), key=lambda i: (i[1], i[0]))
                    if best is None or (score, member) < (best[0], best[1]):
                        best = (score, member, queue, task_type)
            for task_type in task_types if poll else []:
                if best is None:
                    self._pollers[task_type][poll] = poll_until
                else:
                    self._pollers[task_type].pop(poll, None)
            if best is None:
                return None
            _, member, queue, task_type = best
            del self._queues[queue][member]
            if not self._queues[queue]:  # an empty requirement class is forgotten until its next task
                self._classes[task_type].pop(queue, None)
            task_id, job_id, timeout = parse_member(member)
            deadline = now + timeout
            self._leases[task_id] = Lease(task_id, job_id, worker_id, deadline, task_type)
            self._lease_expiry[task_id] = min(deadline, now + worker_ttl)
            entry = self._jobs.get(job_id)
            job = None
            if entry is not None:
                job = unpack_job(entry[1], job_id, entry[0])
            branch_id, tilde, _ = task_id.rpartition("~")
            record = self._branches.get(job_id, {}).get(branch_id) if tilde else None
            branch = dict(loads(record)) if record else None
            return Claim(task_id, job_id, task_type, worker_id, deadline, job, len(self._queues[queue]), branch)

    def get_lease(self, task_id: str) -> Lease | None:
        with self._lock:
            return self._leases.get(task_id)

    def record_lease_progress(self, task_id: str, worker_id: str, progress: dict[str, Any]) -> bool:
        with self._lock:
            lease = self._leases.get(task_id)
            if lease is None or lease.worker_id != worker_id:
                return False
            self._leases[task_id] = dataclasses.replace(lease, progress=loads(dumps(progress)))
            return True

    def expired_leases(self, now: float, limit: int = 100) -> list[Lease]:
        with self._lock:
            due = sorted((expiry, task_id) for task_id, expiry in self._lease_expiry.items() if expiry <= now)
            return [self._leases[task_id] for _, task_id in due[:limit]]

    def drop_lease(self, task_id: str) -> None:
        with self._lock:
            self._leases.pop(task_id, None)
            self._lease_expiry.pop(task_id, None)

    def result_answer(self, task_id: str, worker_id: str) -> str | None:
        with self._lock:
            found = self._answers.get(task_id)
            if found and found[2] < time.time() - ANSWER_TTL:
                found = None
        return found[1] if found and found[0] == worker_id else None

    def queue_length(self, task_type: str) -> int:
        with self._lock:
            return sum(len(self._queues.get(queue, {})) for queue in self._classes.get(task_type, {}))

    def queue_types(self) -> list[str]:
        with self._lock:
            return sorted(self._classes)

    def queue_classes(self, task_type: str) -> list[str]:
        with self._lock:
            return sorted(self._classes.get(task_type, {}))

    # -- workers ------------------------------------------------------------------------------------------

    def save_worker(self, worker: dict[str, Any], ttl: float, now: float) -> None:
        with self._lock:
            self._workers[worker["worker_id"]] = (loads(dumps(worker)), now + ttl)

    def _live_worker(self, worker_id: str, now: float) -> dict[str, Any] | None:
        entry = self._workers.get(worker_id)
        if entry is None or entry[1] <= now:
            return None
        return loads(dumps(entry[0]))  # type: ignore[no-any-return]

    def get_workers(self, worker_ids: list[str]) -> list[dict[str, Any] | None]:
        now = time.time()
        with self._lock:
            return [self._live_worker(w, now) for w in worker_ids]

    def list_workers(self) -> list[dict[str, Any]]:
        now = time.time()
        with self._lock:
            return [w for w in (self._live_worker(i, now) for i in list(self._workers)) if w is not None]

    def heartbeat_worker(
        self, worker_id: str, ttl: float, now: float, updates: dict[str, Any] | None
    ) -> tuple[dict[str, Any] | None, list[str]]:
        with self._lock:
            record = self._live_worker(worker_id, now)
            if record is None:
                return None, []
            record.update(updates or {})
            record["last_seen"] = now
            self._workers[worker_id] = (record, now + ttl)
            for task_id, lease in self._leases.items():
                if lease.worker_id == worker_id:
                    self._lease_expiry[task_id] = min(lease.deadline, now + ttl)
            cancels = sorted(self._cancels.pop(worker_id, set()))
            return record, cancels

    def set_reputations(self, values: dict[str, float]) -> None:
        now = time.time()
        with self._lock:
            for worker_id, reputation in values.items():
                entry = self._workers.get(worker_id)
                if entry is not None and entry[1] > now:
                    entry[0]["reputation"] = float(reputation)

    def active_tasks(self, worker_ids: list[str]) -> list[int]:
        with self._lock:
            counts: dict[str, int] = defaultdict(int)
            for lease in self._leases.values():
                counts[lease.worker_id] += 1
            return [counts[w] for w in worker_ids]

    def expired_workers(self, now: float) -> list[str]:
        with self._lock:
            gone = [w for w, (_, expires) in self._workers.items() if expires <= now]
            for worker_id in gone:
                del self._workers[worker_id]
            return gone

    def set_poller(self, worker_id: str, task_types: list[str], until: float | None) -> None:
        with self._lock:
            for task_type in task_types:
                if until is None:
                    self._pollers[task_type].pop(worker_id, None)
                else:
                    self._pollers[task_type][worker_id] = until

    def pollers(self, task_type: str, now: float) -> list[str]:
        with self._lock:
            return [w for w, until in self._pollers.get(task_type, {}).items() if until > now]

    def sample_pollers(self, task_type: str, now: float, size: int, start: float) -> list[str]:
        polls = self.pollers(task_type, now)
        offset = int(start * len(polls))
        return (polls[offset:] + polls[:offset])[:size]

    def wake(self, worker_id: str) -> None:
        with self._lock:
            self._wakes[worker_id] += 1
            self._signalled_at[worker_id] = time.time()
            self._changed.notify_all()

    def wait_for_wake(self, worker_id: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self._wakes.get(worker_id):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._interrupted:
                    return False
                self._changed.wait(remaining)
            self._wakes.pop(worker_id, None)
            return True

    def push_command(self, worker_id: str, command: dict[str, Any]) -> None:
        with self._lock:
            self._commands[worker_id].append(command)
            self._signalled_at[worker_id] = time.time()
            self._changed.notify_all()

    def pop_commands(self, worker_id: str, timeout: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self._commands.get(worker_id):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._interrupted:
                    return []
                self._changed.wait(remaining)
            return self._commands.pop(worker_id)

    def set_ws_connected(self, worker_id: str, ttl: float | None) -> None:
        with self._lock:
            if ttl is None:
                self._ws.pop(worker_id, None)
            else:
                self._ws[worker_id] = time.time() + ttl

    def ws_connected(self, worker_id: str) -> bool:
        with self._lock:
            return self._ws.get(worker_id, 0) > time.time()

    def replace_worker_tokens(self, hashes: dict[str, str]) -> None:
        with self._lock:
            self._tokens = dict(hashes)
            self._tokens_loaded = True

    def worker_token_hash(self, worker_id: str) -> str | None:
        with self._lock:
            self._check_tokens_loaded()
            return self._tokens.get(worker_id)

    def worker_token_owner(self, token_hash: str) -> str | None:
        with self._lock:
            self._check_tokens_loaded()
            return next((w for w, h in self._tokens.items() if h == token_hash), None)

    def _check_tokens_loaded(self) -> None:
        if not self._tokens_loaded:
            raise TokensNotLoaded("the worker token table was flushed")

    def count_delivery(self, job_id: str, seq: int, ttl_seconds: float) -> int:
        key, now = f"{job_id}:{seq}", time.time()
        with self._lock:
            count, expires = self._deliveries.get(key, (0, now))
            count = count + 1 if expires > now else 1
            self._deliveries[key] = (count, now + ttl_seconds)
            return count

    def next_counter(self, name: str) -> int:
        with self._lock:
            self._counters[name] += 1
            return self._counters[name]

    # -- coordination -------------------------------------------------------------------------------------

    def branch(self, job_id: str, branch_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._branches.get(job_id, {}).get(branch_id)
        return None if found is None else dict(loads(found))

    def branch_records(self, job_id: str) -> dict[str, dict[str, Any]]:
        with self._lock:
            found = dict(self._branches.get(job_id, {}))
        return {k: loads(v) for k, v in found.items()}

    def branch_results(self, job_id: str) -> dict[str, dict[str, Any]]:
        with self._lock:
            found = dict(self._branch_results.get(job_id, {}))
        return {k: loads(v) for k, v in found.items()}

    def branches_done(self, job_id: str) -> int:
        with self._lock:
            return len(self._branch_results.get(job_id, {}))

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
        if publish is not None:
            raise NotImplementedError("MemoryStorage cannot publish broker messages")
        with self._lock:
            lease = self._leases.get(task_id)
            if lease is None or lease.worker_id != worker_id:
                return "lease", 0, ""
            record = self._branches.get(job_id, {}).get(branch_id)
            if (
                branch_id in self._branch_results.get(job_id, {})
                or record is None
                or loads(record)["task_id"] != task_id
            ):
                return "stale", 0, ""
            self._apply(EndLease(task_id, answer))
            if result is not None:
                self._branch_results[job_id][branch_id] = dumps(result)
            else:
                self._branches[job_id][branch_id] = dumps(next_attempt)
                if enqueue is not None:
                    self._apply(Enqueue(enqueue))
                if native_lease is not None:
                    self._apply(GrantLease(native_lease))
            parked = self._parked.get(job_id, {}).pop(branch_id, "") if result is not None else ""
            self._changed.notify_all()
            return "ok", len(self._branch_results[job_id]), parked

    def park_branch(self, job_id: str, branch_id: str, context: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._branch_results.get(job_id, {}).get(branch_id)
            if found is not None:
                return dict(loads(found))
            self._parked[job_id][branch_id] = context
            return None

    def parked_branches(self, job_id: str) -> dict[str, str]:
        with self._lock:
            return dict(self._parked.get(job_id, {}))

    def unpark_branch(self, job_id: str, branch_id: str) -> None:
        with self._lock:
            self._parked.get(job_id, {}).pop(branch_id, None)

    def drop_branches(self, job_id: str) -> None:
        with self._lock:
            for table in (self._branches, self._branch_results, self._parked):
                table.pop(job_id, None)

    def claim_webhook(self, job_id: str, now: float, lease: float) -> int | None:
        with self._lock:
            entry = self._webhooks.get(job_id)
            if entry is None or entry[0] > now:
                return None
            self._webhooks[job_id] = (now + lease, entry[1] + 1)
            return entry[1] + 1

    def finish_webhook(self, job_id: str, retry_at: float | None) -> None:
        with self._lock:
            entry = self._webhooks.get(job_id)
            if retry_at is None:
                self._webhooks.pop(job_id, None)
            elif entry is not None:
                self._webhooks[job_id] = (retry_at, entry[1])

    def due_webhooks(self, now: float, limit: int = 100) -> list[str]:
        with self._lock:
            return sorted((j for j, (due, _) in self._webhooks.items() if due <= now), key=lambda j: self._webhooks[j])[
                :limit
            ]

    def shared_secret(self, name: str) -> str:
        with self._lock:
            return self._secrets.setdefault(name, secrets.token_hex(32))

    def acquire_lock(self, name: str, token: str, ttl_seconds: float) -> bool:
        now = time.time()
        with self._lock:
            held = self._locks.get(name)
            if held and held[1] > now:
                return False
            self._locks[name] = (token, now + ttl_seconds)
            return True

    def release_lock(self, name: str, token: str) -> bool:
        with self._lock:
            held = self._locks.get(name)
            if held and held[0] == token and held[1] > time.time():
                del self._locks[name]
                return True
            return False

    def ping(self) -> bool:
        return True

    def add_to_counters(self, amounts: dict[str, float]) -> None:
        with self._lock:
            for name, amount in amounts.items():
                self._metrics[name] += amount

    def counters(self) -> dict[str, float]:
        with self._lock:
            return dict(self._metrics)

    def report_gauge(self, name: str, member: str, value: float, expires: float) -> None:
        with self._lock:
            self._gauges.setdefault(name, {})[member] = (value, expires)

    def gauge_total(self, name: str, now: float) -> float:
        with self._lock:
            values = self._gauges.get(name, {})
            for member in [m for m, (_, expires) in values.items() if expires <= now]:
                del values[member]
            return sum(value for value, _ in values.values())

    def flush(self) -> None:
        with self._lock:
            self._tokens_loaded = False
            for table in (
                self._jobs,
                self._idempotency,
                self._locks,
                self._watch,
                self._queues,
                self._classes,
                self._leases,
                self._lease_expiry,
                self._answers,
                self._workers,
                self._cancels,
                self._pollers,
                self._wakes,
                self._commands,
                self._ws,
                self._tokens,
                self._counters,
                self._deliveries,
                self._webhooks,
                self._quotas,
                self._metrics,
            ):
                table.clear()
