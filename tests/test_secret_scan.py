"""Secret hygiene after the whole run (SPEC §5): once every other test has run (this one is moved to the end),
no token of the suite's configuration, no token hash and no auth header line appears in anything the run left:

- every log line of the test process (embedded orchestrators run in it; the project's loggers at DEBUG) and of
  every child process started by the project's own commands (gunicorn, celery, `avtomatika ...`);
- every HTTP answer a client of the test process received (job views, history rows, dashboards, errors);
- every job record in the run's Redis (all databases), i.e. every stored job view;
- every file the tests left under this run's pytest temporary folder (history databases in SQLite, span and
  webhook dumps, the stack's logs), except the configuration files the tests wrote the tokens into; Redis's
  own AOF and RDB files hold the token table, i.e. token hashes by design, so only tokens and header lines
  are looked for there.

The tokens scanned for are the suite's fixed ones (`tests/apps/*.toml`, the global worker token); the public
default tokens (`secure-client-token`, ...) are not secrets and the start-up lines name them on purpose.
`tests/observability/test_secret_hygiene.py` does the same with random tokens over one workload of its own.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import redis

from avtomatika.security import hash_token
from tests import suite_record
from tests.services import GLOBAL_WORKER_TOKEN, ROOT

CONFIG_SUFFIXES = {".toml", ".env", ".conf", ".py", ".yaml", ".yml"}  # written by tests, holding the tokens
MAX_FILE_BYTES = 256 * 1024 * 1024


def suite_tokens() -> list[str]:
    tokens = {GLOBAL_WORKER_TOKEN}
    for path in (ROOT / "tests/apps").glob("*.toml"):
        for table in tomllib.loads(path.read_text()).values():
            if isinstance(table, dict) and isinstance(table.get("token"), str):
                tokens.add(table["token"])
    return sorted(tokens)


def forbidden(hashes: bool = True) -> list[bytes]:
    """The tokens, their header lines and (unless `hashes` is false) their stored form."""
    found: list[str] = []
    for token in suite_tokens():
        found += [token, hash_token(token)] if hashes else [token]
        found += [f"{header}: {token}" for header in ("X-Avtomatika-Token", "X-Worker-Token")]
    return [text.encode() for text in found]


def redis_persistence(path: Path) -> bool:
    """A Redis AOF or RDB file: the token store itself, where token hashes belong (tokens never)."""
    return "appendonlydir" in path.parts or path.suffix in {".aof", ".rdb"}


def leaks(data: bytes, where: str, patterns: list[bytes]) -> list[str]:
    return [f"{where}: {pattern.decode()!r}" for pattern in patterns if pattern in data]


def left_files(base: Path) -> list[Path]:
    return [
        path
        for path in base.rglob("*")
        if path.is_file()
        and not path.is_symlink()
        and path.suffix not in CONFIG_SUFFIXES
        and path.stat().st_size <= MAX_FILE_BYTES
    ]


@pytest.mark.scan_last
def test_nothing_the_whole_run_left_holds_a_token(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    record = suite_record.RECORD
    assert record is not None
    patterns = forbidden()
    assert len(patterns) >= 4 * 8  # the suite's clients and workers, and the global worker token
    found: list[str] = []
    scanned = {"log files": 0, "answers": 0, "job records": 0, "left files": 0}

    for path in [record.logs, record.answers, *record.process_logs]:
        if path.exists():
            data = path.read_bytes()
            found += leaks(data, str(path), patterns)
            scanned["log files"] += 1
            if path == record.answers:
                scanned["answers"] = data.count(b" -> ")

    for db in range(16):
        client = redis.Redis.from_url(f"{redis_url}/{db}")
        for key in client.scan_iter(match="*:job:*", count=1000):
            if client.type(key) == b"hash":
                for field, value in client.hgetall(key).items():
                    found += leaks(field + b"=" + value, f"redis db {db} {key.decode()}", patterns)
                scanned["job records"] += 1
        client.close()

    stored = forbidden(hashes=False)
    for path in left_files(tmp_path_factory.getbasetemp()):
        found += leaks(path.read_bytes(), str(path), stored if redis_persistence(path) else patterns)
        scanned["left files"] += 1

    assert found == [], found
    if record.tests_run > 500:  # after the whole run, not a selection of it
        assert scanned["answers"] > 1000 and scanned["job records"] > 100 and scanned["log files"] > 50, scanned


def test_the_scan_sees_a_token_and_its_forms() -> None:
    token = suite_tokens()[0]
    patterns = forbidden()
    for text in (f"... {token} ...", f"stored {hash_token(token)}", f"X-Worker-Token: {token}\r\n"):
        assert leaks(text.encode(), "here", patterns)
    assert leaks(b"X-Worker-Token: <redacted>", "here", patterns) == []
