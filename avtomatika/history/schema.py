"""The history tables (SQLAlchemy Core). Changes to them come with an Alembic migration in `migrations/versions`.

`job_history` keeps the original's columns (`event_id`, `job_id`, `timestamp`, `state`, `event_type`,
`duration_ms`, `previous_state`, `next_state`, `worker_id`, `attempt_number`, `context_snapshot`) plus the
ordering key (`job_seq`: the job's commit counter; `id`: an identity in write order) and what queries need
(`blueprint`, `status`, `task_id`, `outcome`). `history_jobs` is one summary row per job, kept up to date from
the events, for listing jobs by status and blueprint.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, Integer, MetaData, String, Table, Text
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()
# SQLite makes only an INTEGER PRIMARY KEY an auto-incrementing rowid alias.
IDENTITY = BigInteger().with_variant(Integer(), "sqlite")
DOCUMENT = JSON().with_variant(JSONB(), "postgresql")
STAMP = DateTime(timezone=True)

job_history = Table(
    "job_history",
    metadata,
    Column("id", IDENTITY, primary_key=True, autoincrement=True),
    Column("event_id", Text(), nullable=False, unique=True),
    Column("job_id", Text(), nullable=False),
    Column("job_seq", BigInteger, nullable=False),
    Column("timestamp", STAMP, nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("blueprint", Text(), nullable=False),
    Column("status", String(32), nullable=False),
    Column("state", Text()),
    Column("previous_state", Text()),
    Column("next_state", Text()),
    Column("duration_ms", BigInteger),
    Column("worker_id", Text()),
    Column("task_id", Text()),
    Column("attempt_number", Integer),
    Column("outcome", String(16)),
    Column("context_snapshot", DOCUMENT),
    Index("ix_job_history_job", "job_id", "job_seq", "timestamp", "id"),
    Index("ix_job_history_worker", "worker_id", "timestamp"),
)

worker_history = Table(
    "worker_history",
    metadata,
    Column("id", IDENTITY, primary_key=True, autoincrement=True),
    Column("event_id", Text(), nullable=False, unique=True),
    Column("worker_id", Text(), nullable=False),
    Column("timestamp", STAMP, nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("worker_info_snapshot", DOCUMENT),
    Index("ix_worker_history_worker", "worker_id", "timestamp"),
)

history_jobs = Table(
    "history_jobs",
    metadata,
    Column("job_id", Text(), primary_key=True),
    Column("blueprint", Text(), nullable=False),
    Column("client_id", Text()),
    Column("status", String(32), nullable=False),
    Column("current_state", Text()),
    Column("job_seq", BigInteger, nullable=False),
    Column("created_at", STAMP),
    Column("updated_at", STAMP, nullable=False),
    Column("finished_at", STAMP),
    Column("error_message", Text),
    Index("ix_history_jobs_updated", "updated_at"),
    Index("ix_history_jobs_status", "status", "updated_at"),
    Index("ix_history_jobs_client", "client_id", "updated_at"),
)
