"""Alembic environment: migrates the connection `HistoryStore.migrate` passes in `config.attributes`."""

from __future__ import annotations

from alembic import context

from avtomatika.history.schema import metadata

VERSION_TABLE = "avtomatika_history_version"


def run() -> None:
    """Run the migrations on the given connection, or on `sqlalchemy.url` when run from the alembic CLI."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        from sqlalchemy import create_engine

        engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
        with engine.begin() as fresh:
            context.configure(connection=fresh, target_metadata=metadata, version_table=VERSION_TABLE)
            context.run_migrations()
        return
    context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


run()
