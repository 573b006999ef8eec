"""The history tables: job events, worker events and one summary row per job.

Revision ID: 0001
Revises:

The tables are spelled out here (not imported from `schema.py`) so this revision stays what it was when
`schema.py` changes later; a later change is a new revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

IDENTITY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
DOCUMENT = sa.JSON().with_variant(JSONB(), "postgresql")
STAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the tables of schema version 0001."""
    op.create_table(
        "job_history",
        sa.Column("id", IDENTITY, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.Text(), nullable=False, unique=True),
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("job_seq", sa.BigInteger, nullable=False),
        sa.Column("timestamp", STAMP, nullable=False),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("blueprint", sa.Text(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("state", sa.Text()),
        sa.Column("previous_state", sa.Text()),
        sa.Column("next_state", sa.Text()),
        sa.Column("duration_ms", sa.BigInteger),
        sa.Column("worker_id", sa.Text()),
        sa.Column("task_id", sa.Text()),
        sa.Column("attempt_number", sa.Integer),
        sa.Column("outcome", sa.String(16)),
        sa.Column("context_snapshot", DOCUMENT),
    )
    op.create_index("ix_job_history_job", "job_history", ["job_id", "job_seq", "timestamp", "id"])
    op.create_index("ix_job_history_worker", "job_history", ["worker_id", "timestamp"])
    op.create_table(
        "worker_history",
        sa.Column("id", IDENTITY, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.Text(), nullable=False, unique=True),
        sa.Column("worker_id", sa.Text(), nullable=False),
        sa.Column("timestamp", STAMP, nullable=False),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("worker_info_snapshot", DOCUMENT),
    )
    op.create_index("ix_worker_history_worker", "worker_history", ["worker_id", "timestamp"])
    op.create_table(
        "history_jobs",
        sa.Column("job_id", sa.Text(), primary_key=True),
        sa.Column("blueprint", sa.Text(), nullable=False),
        sa.Column("client_id", sa.Text()),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("current_state", sa.Text()),
        sa.Column("job_seq", sa.BigInteger, nullable=False),
        sa.Column("created_at", STAMP),
        sa.Column("updated_at", STAMP, nullable=False),
        sa.Column("finished_at", STAMP),
        sa.Column("error_message", sa.Text),
    )
    op.create_index("ix_history_jobs_updated", "history_jobs", ["updated_at"])
    op.create_index("ix_history_jobs_status", "history_jobs", ["status", "updated_at"])
    op.create_index("ix_history_jobs_client", "history_jobs", ["client_id", "updated_at"])


def downgrade() -> None:
    """Drop them."""
    for table in ("history_jobs", "worker_history", "job_history"):
        op.drop_table(table)
