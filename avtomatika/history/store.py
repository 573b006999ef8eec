"""The history database: writes batches of stream events and answers the history queries (SQLAlchemy 2.1).

SQLite (a file, WAL mode) and PostgreSQL (`postgresql+psycopg://`) behave the same; the contract suite in
tests/history runs against both.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, case, create_engine, event, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError

from ..errors import Unavailable
from ..stream import Event, JobEvent, WorkerEvent
from .schema import history_jobs, job_history, worker_history

logger = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x61767468  # the PostgreSQL advisory lock held while migrating ("avth")
ATTEMPT_OUTCOMES = ("success", "failure", "timeout")
R = TypeVar("R")
_ALEMBIC = threading.Lock()  # alembic's migration context is global to the process


def _reading(method: Callable[..., R]) -> Callable[..., R]:
    """A query: the schema is made sure of first; a database that does not answer is `Unavailable`."""

    @functools.wraps(method)
    def query(self: HistoryStore, *args: Any, **kwargs: Any) -> R:
        try:
            self.ensure_schema()
            return method(self, *args, **kwargs)
        except SQLAlchemyError as exc:
            logger.warning("history query failed: %s", str(exc).splitlines()[0][:300])
            raise Unavailable("the history database is unavailable; try again later") from None

    return query


def stamp(epoch: float) -> datetime:
    """An aware UTC datetime with microseconds from epoch seconds."""
    return datetime.fromtimestamp(epoch, UTC)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite gives back naive datetimes; everything stored is UTC.
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _iso(value: datetime | None) -> str | None:
    aware = _aware(value)
    return aware.isoformat() if aware is not None else None


class HistoryStore:
    """One history database (its schema is migrated to the newest version by `migrate`)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = url.split(":", 1)[0].split("+", 1)[0]
        options: dict[str, Any] = {"pool_pre_ping": True}
        if self.dialect == "sqlite":
            options["connect_args"] = {"timeout": 30}
        else:
            options["connect_args"] = {"connect_timeout": 5}
        self.engine: Engine = create_engine(url, **options)
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._migrated = False
        self._migrate_lock = threading.Lock()

    def ensure_schema(self) -> None:
        """`migrate` once per process (what a writer or the first query does)."""
        if self._migrated:
            return
        with self._migrate_lock:
            if not self._migrated:
                self.migrate()
                self._migrated = True

    def migrate(self) -> None:
        """Create the tables, or bring them to the newest version (Alembic; safe with several processes)."""
        from alembic import command
        from alembic.config import Config as AlembicConfig

        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        for attempt in range(5):
            try:
                with _ALEMBIC, self.engine.begin() as connection:
                    if self.dialect == "postgresql":  # one migrating process at a time
                        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
                return
            except (OperationalError, ProgrammingError):
                # SQLite has no lock to take: another process may have created a table meanwhile; look again.
                if self.dialect != "sqlite" or attempt == 4:
                    raise
                time.sleep(0.2)

    def dispose(self) -> None:
        """Drop pooled connections (after a fork, or at the end)."""
        self.engine.dispose(close=False)
        self._migrate_lock = threading.Lock()

    # -- writing --------------------------------------------------------------------------------------------

    def write(self, batch: Sequence[tuple[str, Event]]) -> None:
        """Store `(event_id, event)` pairs in one transaction; an event id stored before is skipped, so a batch
        whose commit answer was lost can be written again."""
        self.ensure_schema()
        jobs = [(event_id, e) for event_id, e in batch if isinstance(e, JobEvent)]
        workers = [(event_id, e) for event_id, e in batch if isinstance(e, WorkerEvent)]
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        with self.engine.begin() as connection:
            if jobs:
                rows = [_job_row(event_id, e) for event_id, e in jobs]
                connection.execute(insert(job_history).on_conflict_do_nothing(index_elements=["event_id"]), rows)
                summaries = _summaries([e for _, e in jobs])
                statement = insert(history_jobs)
                new = statement.excluded
                newer = new.job_seq >= history_jobs.c.job_seq
                statement = statement.on_conflict_do_update(
                    index_elements=["job_id"],
                    set_={
                        "client_id": func.coalesce(history_jobs.c.client_id, new.client_id),
                        "created_at": func.coalesce(history_jobs.c.created_at, new.created_at),
                        "status": case((newer, new.status), else_=history_jobs.c.status),
                        "current_state": case((newer, new.current_state), else_=history_jobs.c.current_state),
                        "finished_at": case((newer, new.finished_at), else_=history_jobs.c.finished_at),
                        "error_message": case((newer, new.error_message), else_=history_jobs.c.error_message),
                        "updated_at": case((newer, new.updated_at), else_=history_jobs.c.updated_at),
                        "job_seq": case((newer, new.job_seq), else_=history_jobs.c.job_seq),
                    },
                )
                connection.execute(statement, summaries)
            if workers:
                rows = [
                    {
                        "event_id": event_id,
                        "worker_id": e.worker_id,
                        "timestamp": stamp(e.timestamp),
                        "event_type": e.kind,
                        "worker_info_snapshot": dict(e.snapshot),
                    }
                    for event_id, e in workers
                ]
                connection.execute(insert(worker_history).on_conflict_do_nothing(index_elements=["event_id"]), rows)

    # -- reading --------------------------------------------------------------------------------------------

    @_reading
    def job_events(self, job_id: str) -> list[dict[str, Any]]:
        """The job's events in order: by commit (`job_seq`), then time, then write order; `sequence` numbers
        them 1, 2, 3, ..."""
        query = (
            select(job_history)
            .where(job_history.c.job_id == job_id)
            .order_by(job_history.c.job_seq, job_history.c.timestamp, job_history.c.id)
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [
            {
                "sequence": number,
                "event_id": row["event_id"],
                "job_id": row["job_id"],
                "job_seq": row["job_seq"],
                "timestamp": _iso(row["timestamp"]),
                "event_type": row["event_type"],
                "blueprint": row["blueprint"],
                "status": row["status"],
                "state": row["state"],
                "previous_state": row["previous_state"],
                "next_state": row["next_state"],
                "duration_ms": row["duration_ms"],
                "worker_id": row["worker_id"],
                "task_id": row["task_id"],
                "attempt_number": row["attempt_number"],
                "outcome": row["outcome"],
                "context_snapshot": row["context_snapshot"] or {},
            }
            for number, row in enumerate(rows, start=1)
        ]

    @_reading
    def job_owner(self, job_id: str) -> str | None:
        """The client id that created the job, or None when history does not know the job (yet)."""
        query = select(history_jobs.c.client_id).where(history_jobs.c.job_id == job_id)
        with self.engine.connect() as connection:
            owner = connection.execute(query).scalar()
        return str(owner) if owner is not None else None

    @_reading
    def list_jobs(
        self,
        *,
        client_id: str | None,
        status: str | None = None,
        blueprint: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Jobs most recently changed first; `client_id` None means every client's (an admin asks)."""
        query = select(history_jobs)
        if client_id is not None:
            query = query.where(history_jobs.c.client_id == client_id)
        if status is not None:
            query = query.where(history_jobs.c.status == status)
        if blueprint is not None:
            query = query.where(history_jobs.c.blueprint == blueprint)
        query = query.order_by(history_jobs.c.updated_at.desc(), history_jobs.c.job_id).limit(limit).offset(offset)
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [
            {
                "id": row["job_id"],
                "blueprint_name": row["blueprint"],
                "status": row["status"],
                "current_state": row["current_state"],
                "error_message": row["error_message"],
                "created_at": _epoch(row["created_at"]),
                "updated_at": _epoch(row["updated_at"]),
                "finished_at": _epoch(row["finished_at"]),
            }
            for row in rows
        ]

    @_reading
    def count_by_status(self) -> dict[str, int]:
        """How many jobs history knows in each status."""
        query = select(history_jobs.c.status, func.count()).group_by(history_jobs.c.status)
        with self.engine.connect() as connection:
            return {str(status): int(count) for status, count in connection.execute(query).all()}

    @_reading
    def worker_outcomes(self, since: float) -> dict[str, dict[str, int]]:
        """Per worker, how many attempts since `since` (epoch seconds) ended in success, failure or timeout."""
        query = (
            select(job_history.c.worker_id, job_history.c.outcome, func.count())
            .where(
                job_history.c.worker_id.is_not(None),
                job_history.c.timestamp >= stamp(since),
                job_history.c.outcome.in_(ATTEMPT_OUTCOMES),
            )
            .group_by(job_history.c.worker_id, job_history.c.outcome)
        )
        counts: dict[str, dict[str, int]] = {}
        with self.engine.connect() as connection:
            for worker_id, outcome, count in connection.execute(query).all():
                counts.setdefault(str(worker_id), dict.fromkeys(ATTEMPT_OUTCOMES, 0))[str(outcome)] = int(count)
        return counts

    @_reading
    def worker_events(self, worker_id: str) -> list[dict[str, Any]]:
        """The worker's events in write order."""
        query = select(worker_history).where(worker_history.c.worker_id == worker_id).order_by(worker_history.c.id)
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [
            {
                "event_id": row["event_id"],
                "worker_id": row["worker_id"],
                "timestamp": _iso(row["timestamp"]),
                "event_type": row["event_type"],
                "worker_info_snapshot": row["worker_info_snapshot"] or {},
            }
            for row in rows
        ]


def _epoch(value: datetime | None) -> float | None:
    aware = _aware(value)
    return aware.timestamp() if aware is not None else None


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _job_row(event_id: str, e: JobEvent) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "job_id": e.job_id,
        "job_seq": e.seq,
        "timestamp": stamp(e.timestamp),
        "event_type": e.kind,
        "blueprint": e.blueprint,
        "status": e.status,
        "state": e.state,
        "previous_state": e.previous_state,
        "next_state": e.next_state,
        "duration_ms": e.duration_ms,
        "worker_id": e.worker_id,
        "task_id": e.task_id,
        "attempt_number": e.attempt,
        "outcome": e.outcome,
        "context_snapshot": dict(e.details),
    }


def _summaries(events: list[JobEvent]) -> list[dict[str, Any]]:
    """One summary row per job of the batch: its newest event (by commit, then order), plus who created it."""
    newest: dict[str, dict[str, Any]] = {}
    for e in events:
        row = newest.get(e.job_id)
        if row is None or e.seq >= row["job_seq"]:
            terminal = e.kind in ("job_finished", "job_failed", "job_cancelled", "job_quarantined")
            newest[e.job_id] = row = {
                "job_id": e.job_id,
                "blueprint": e.blueprint,
                "client_id": row["client_id"] if row else None,
                "created_at": row["created_at"] if row else None,
                "status": e.status,
                "current_state": e.state,
                "job_seq": e.seq,
                "updated_at": stamp(e.timestamp),
                "finished_at": stamp(e.timestamp) if terminal else None,
                "error_message": e.details.get("error_message") if terminal else None,
            }
        if e.kind == "job_created":
            row["client_id"] = e.details.get("client_id")
            row["created_at"] = stamp(e.timestamp)
    return list(newest.values())
