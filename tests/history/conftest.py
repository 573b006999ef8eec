"""History fixtures: a throwaway PostgreSQL cluster per session and a fresh database (or SQLite file) per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.services import Postgres, postgres_server


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def history_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A fresh, empty history database of each kind (the contract suite runs once per kind)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.db'}"
    server: Postgres = request.getfixturevalue("postgres")
    return server.create_database(f"h_{uuid.uuid4().hex[:12]}")
