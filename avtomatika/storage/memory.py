"""In-process storage: a full peer of the Redis backend for the embedded default and for tests."""

from __future__ import annotations

import threading
import time

from ..job import Job
from .base import StorageBackend, dumps, loads


class MemoryStorage(StorageBackend):
    """Thread-safe in-memory storage; records are kept serialised so no caller shares a live dict."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, tuple[int, str, float | None]] = {}
        self._idempotency: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, tuple[str, float]] = {}
        self._watch: dict[str, float] = {}

    @staticmethod
    def _alive(expires: float | None, now: float) -> bool:
        return expires is None or expires > now

    def _set_watch(self, job_id: str, watch_until: float | None) -> None:
        if watch_until is None:
            self._watch.pop(job_id, None)
        else:
            self._watch[job_id] = watch_until

    def create_job(
        self,
        job: Job,
        *,
        idempotency_key: str | None = None,
        idempotency_ttl: int = 86400,
        watch_until: float | None = None,
    ) -> str:
        now = time.time()
        with self._lock:
            if idempotency_key is not None:
                existing = self._idempotency.get(idempotency_key)
                if existing and existing[1] > now:
                    return existing[0]
                self._idempotency[idempotency_key] = (job["id"], now + idempotency_ttl)
            job["seq"] = 0
            self._jobs[job["id"]] = (0, dumps(job), None)
            self._set_watch(job["id"], watch_until)
            return str(job["id"])

    def get_job(self, job_id: str) -> Job | None:
        with self._lock:
            entry = self._jobs.get(job_id)
            if entry is None or not self._alive(entry[2], time.time()):
                return None
        job: Job = loads(entry[1])
        job["seq"] = entry[0]
        return job

    def commit_job(
        self,
        job: Job,
        expected_seq: int,
        *,
        retention_seconds: int | None = None,
        watch_until: float | None = None,
    ) -> bool:
        previous = job.get("seq")
        job["seq"] = expected_seq + 1
        document = dumps(job)
        with self._lock:
            entry = self._jobs.get(job["id"])
            if entry is None or entry[0] != expected_seq or not self._alive(entry[2], time.time()):
                job["seq"] = previous
                return False
            expires = time.time() + retention_seconds if retention_seconds else None
            self._jobs[job["id"]] = (job["seq"], document, expires)
            self._set_watch(job["id"], watch_until)
            return True

    def stalled_jobs(self, now: float, limit: int = 100) -> list[str]:
        with self._lock:
            due = sorted((deadline, job_id) for job_id, deadline in self._watch.items() if deadline <= now)
        return [job_id for _, job_id in due[:limit]]

    def watch_job(self, job_id: str, watch_until: float | None) -> None:
        with self._lock:
            self._set_watch(job_id, watch_until)

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
            if held and held[0] == token:
                del self._locks[name]
                return True
            return False

    def ping(self) -> bool:
        return True

    def flush(self) -> None:
        with self._lock:
            self._jobs.clear()
            self._idempotency.clear()
            self._locks.clear()
            self._watch.clear()
