"""What the whole test run leaves behind, kept for the secret scan that runs after every other test
(`tests/test_secret_scan.py`, moved to the end of the run by `pytest_collection_modifyitems`).

Kept in one folder per run (`SuiteRecord.folder`):
- `process.log`: every log record of the test process itself (the embedded orchestrators run in it), at DEBUG
  for the project's own loggers;
- `answers.log`: every HTTP answer an `httpx` client of the test process received (status, headers, body);
- the log files of the child processes the tests start (`tests.services.Process` names them here).
"""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

SCAN_LAST = "scan_last"  # marker of the tests that run after all others
PROJECT_LOGGERS = ("avtomatika", "webapi", "celery_app", "blueprints")


class SuiteRecord:
    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="avtomatika-suite-"))
        self.process_logs: list[Path] = []  # child processes started by the project's own commands
        self.answers = self.folder / "answers.log"
        self.logs = self.folder / "process.log"
        self.tests_run = 0
        self._lock = threading.Lock()
        self._answers = self.answers.open("a", encoding="utf-8", errors="replace")

    @property
    def closed(self) -> bool:
        return self._answers.closed

    def answer(self, response: httpx.Response) -> None:
        try:
            body = response.content.decode("utf-8", errors="replace")
        except (httpx.ResponseNotRead, httpx.StreamError):
            body = ""  # a streamed answer the test reads itself
        headers = "".join(f"{name}: {value}\n" for name, value in response.headers.multi_items())
        with self._lock:
            if self._answers.closed:
                return
            self._answers.write(f"{response.request.method} {response.request.url} -> {response.status_code}\n")
            self._answers.write(headers + body + "\n\n")
            self._answers.flush()

    def close(self) -> None:
        with self._lock:
            self._answers.close()


RECORD: SuiteRecord | None = None


def _recording(send: Any, asynchronous: bool) -> Any:
    if asynchronous:

        async def send_async(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> httpx.Response:
            response = await send(self, request, **kwargs)
            if RECORD is not None and not RECORD.closed and not kwargs.get("stream"):
                RECORD.answer(response)
            return response

        return send_async

    def send_sync(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = send(self, request, **kwargs)
        if RECORD is not None and not RECORD.closed and not kwargs.get("stream"):
            RECORD.answer(response)
        return response

    return send_sync


def pytest_configure(config: pytest.Config) -> None:
    global RECORD
    config.addinivalue_line("markers", f"{SCAN_LAST}: runs after every other test of the run")
    RECORD = SuiteRecord()
    handler = logging.FileHandler(RECORD.logs, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    for name in PROJECT_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    httpx.Client.send = _recording(httpx.Client.send, asynchronous=False)  # type: ignore[method-assign]
    httpx.AsyncClient.send = _recording(httpx.AsyncClient.send, asynchronous=True)  # type: ignore[method-assign]


def pytest_unconfigure() -> None:
    if RECORD is not None:
        RECORD.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    last = [item for item in items if item.get_closest_marker(SCAN_LAST)]
    items[:] = [item for item in items if not item.get_closest_marker(SCAN_LAST)] + last


def pytest_runtest_logfinish() -> None:
    if RECORD is not None:
        RECORD.tests_run += 1
