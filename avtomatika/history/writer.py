"""The buffered history writer: a stream subscriber that never blocks or fails a job.

Events go into a bounded in-memory buffer; a background thread of this process writes them in batches. While
the database is unreachable the batch waits and is written again (event ids make a repeat harmless), the
buffer grows up to `HISTORY_BUFFER_SIZE` (then the oldest events are dropped and counted) and `backlog`
tells how many events wait; a warning is logged when the outage starts and when the backlog has drained.
Each process has its own writer thread, started on its first event (so a forked Celery child starts its own).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
from collections import deque

from sqlalchemy.exc import InterfaceError, OperationalError

from ..stream import Event
from .store import HistoryStore

logger = logging.getLogger(__name__)
MAX_BACKOFF_SECONDS = 5.0


class HistoryWriter:
    """Buffers stream events and writes them to a `HistoryStore` in batches from a background thread."""

    def __init__(
        self, store: HistoryStore, *, buffer_size: int = 100_000, batch_size: int = 500, flush_seconds: float = 0.2
    ) -> None:
        self.store = store
        self.buffer_size = buffer_size
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.dropped = 0
        self.written = 0
        self._pid = -1
        self._start_lock = threading.Lock()
        self._reset()
        atexit.register(self.flush, 2.0)

    def _reset(self) -> None:
        self._buffer: deque[tuple[str, Event]] = deque()
        self._inflight: list[tuple[str, Event]] = []
        self._wake = threading.Condition()
        self._failing_since: float | None = None
        self._stopping = False

    # -- what the metrics and the operator read ----------------------------------------------------------

    @property
    def backlog(self) -> int:
        """Events of this process not written yet (buffered or in a batch being retried)."""
        return len(self._buffer) + len(self._inflight)

    @property
    def failing(self) -> bool:
        """True while the database refuses writes."""
        return self._failing_since is not None

    # -- the subscriber ----------------------------------------------------------------------------------

    def handle(self, event: Event) -> None:
        """Buffer one event (never blocks on the database)."""
        self._ensure_thread()
        with self._wake:
            if len(self._buffer) >= self.buffer_size:
                self._buffer.popleft()
                self.dropped += 1
                if self.dropped % 1000 == 1:
                    logger.error(
                        "history buffer full (%d events): %d events dropped so far", self.buffer_size, self.dropped
                    )
            self._buffer.append((str(uuid.uuid4()), event))
            if len(self._buffer) >= self.batch_size:
                self._wake.notify()

    def start(self) -> None:
        """Start this process's writer thread now (it creates or migrates the schema at once)."""
        self._ensure_thread()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait up to `timeout` seconds for the backlog to be written; True when it was."""
        deadline = time.monotonic() + timeout
        with self._wake:
            self._wake.notify()
        while self.backlog and time.monotonic() < deadline and self._pid == os.getpid() and not self._stopping:
            time.sleep(0.02)
        return self.backlog == 0

    def stop(self) -> None:
        """Stop the background thread after a last flush attempt."""
        atexit.unregister(self.flush)
        self.flush(2.0)
        self._stopping = True
        with self._wake:
            self._wake.notify()
        self.store.engine.dispose()  # pooled connections; one the thread still uses is closed when returned

    # -- the background thread ---------------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._pid == os.getpid():
            return
        with self._start_lock:
            if self._pid == os.getpid():
                return
            if self._pid != -1:  # forked: the parent's buffer and connections are not ours
                self._reset()
                self.store.dispose()
            self._pid = os.getpid()
            threading.Thread(target=self._run, name="history-writer", daemon=True).start()

    def _write_one_by_one(self) -> bool:
        """Write the batch in flight event by event, dropping (and logging) what the database refuses;
        False when the database became unreachable meanwhile (the batch is then retried as a whole)."""
        for item in self._inflight:
            try:
                self.store.write([item])
            except (OperationalError, InterfaceError):
                return False
            except Exception:
                self.dropped += 1
                logger.exception(
                    "history event %s of job %s refused: dropped", item[1].kind, getattr(item[1], "job_id", "")
                )
        return True

    def _run(self) -> None:
        try:
            self.store.ensure_schema()
        except Exception as exc:  # the first batch tries again
            logger.warning("history database unavailable at start (%s): events are buffered", str(exc)[:300])
        backoff = self.flush_seconds
        while not self._stopping:
            if not self._inflight:
                with self._wake:
                    if len(self._buffer) < self.batch_size:
                        self._wake.wait(self.flush_seconds)
                    count = min(len(self._buffer), self.batch_size)
                    self._inflight = [self._buffer.popleft() for _ in range(count)]
                if not self._inflight:
                    continue
            try:
                self.store.ensure_schema()
                self.store.write(self._inflight)
            except (OperationalError, InterfaceError) as exc:  # the database is down or unreachable
                if self._failing_since is None:
                    self._failing_since = time.time()
                    reason = str(exc).splitlines()[0][:300]
                    logger.warning(
                        "history database unavailable (%s): buffering events, %d waiting", reason, self.backlog
                    )
                time.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            except Exception as exc:  # the database refused this batch: keep what it takes, drop what it refuses
                logger.error("history batch refused (%s): writing it event by event", str(exc).splitlines()[0][:300])
                if not self._write_one_by_one():
                    time.sleep(backoff)
                    continue
            self.written += len(self._inflight)
            self._inflight = []
            backoff = self.flush_seconds
            if self._failing_since is not None and not self._buffer:
                logger.warning(
                    "history database is back after %.1f s: the backlog is written", time.time() - self._failing_since
                )
                self._failing_since = None
