"""The storage port: domain-level operations whose docstrings say what must be atomic."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any

from ..job import Job


def dumps(value: Any) -> str:
    """Compact JSON, the one serialisation every backend uses (so both behave alike)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


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
    ) -> str:
        """Store a new job (its `seq` is 0) and return its id.

        With `watch_until` the job also goes on the stall watch list (see `commit_job`).
        Atomic: with an `idempotency_key` (already scoped to the client by the caller), a key seen before
        returns the first job's id and stores nothing; two concurrent creates with one key make one job.
        """

    @abstractmethod
    def get_job(self, job_id: str) -> Job | None:
        """The job record, or None."""

    @abstractmethod
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

    @abstractmethod
    def stalled_jobs(self, now: float, limit: int = 100) -> list[str]:
        """Ids of jobs whose stall watch deadline is before `now` (oldest first)."""

    @abstractmethod
    def watch_job(self, job_id: str, watch_until: float | None) -> None:
        """Move a job's stall watch deadline, or drop it from the watch list with None."""

    @abstractmethod
    def acquire_lock(self, name: str, token: str, ttl_seconds: float) -> bool:
        """Take the named lock for `ttl_seconds` if nobody holds it (SET NX PX)."""

    @abstractmethod
    def release_lock(self, name: str, token: str) -> bool:
        """Release the lock only if `token` still holds it (compare-and-delete)."""

    @abstractmethod
    def ping(self) -> bool:
        """True when the backend answers."""

    @abstractmethod
    def flush(self) -> None:
        """Delete everything this backend stores (debug and tests only)."""

    def close(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Release connections; the default does nothing."""
