"""Job and worker history in SQL (SQLite or PostgreSQL through SQLAlchemy): a stream subscriber and its queries.

Needs the `history` extra (`pip install avtomatika[history]`). `open_history(config)` builds the store and its
buffered writer from `HISTORY_DATABASE_URI` / `HISTORY_ENABLED`; the composition root subscribes the writer
to the engine's event stream.
"""

from __future__ import annotations

from ..config import Config
from .store import HistoryStore
from .writer import HistoryWriter

__all__ = ["History", "HistoryStore", "HistoryWriter", "open_history"]


class History:
    """The history of one engine: the store (queries) and this process's writer (the stream subscriber)."""

    def __init__(self, store: HistoryStore, writer: HistoryWriter) -> None:
        self.store = store
        self.writer = writer


def open_history(config: Config) -> History | None:
    """The history configured by `config`, or None when history is off."""
    url = config.history_url
    if not url:
        return None
    store = HistoryStore(url)
    writer = HistoryWriter(
        store,
        buffer_size=config.HISTORY_BUFFER_SIZE,
        batch_size=config.HISTORY_BATCH_SIZE,
        flush_seconds=config.HISTORY_FLUSH_SECONDS,
    )
    return History(store, writer)
