"""Settings, read once from the environment and passed down; every attribute may be overridden afterwards."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigError

DEFAULT_CLIENT_TOKEN = "secure-client-token"
DEFAULT_WORKER_TOKEN = "secure-worker-token"
DEFAULT_HISTORY_URI = "sqlite:///avtomatika-history.db"


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name} must be an integer, got {raw!r}", name=name) from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name} must be a number, got {raw!r}", name=name) from None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"environment variable {name} must be true or false, got {raw!r}", name=name)


class Config:
    """All settings of an engine (SPEC §9), loaded from `environ` (default: `os.environ`).

    Attributes are plain and writable: ``config.CLIENT_TOKEN = "..."`` after construction takes effect,
    because every consumer reads the attribute when it starts, never the environment.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env: Mapping[str, str] = os.environ if environ is None else environ
        self.API_HOST: str = env.get("API_HOST", "0.0.0.0")
        self.API_PORT: int = _int(env, "API_PORT", 8080)
        self.CLIENT_TOKEN: str = env.get("CLIENT_TOKEN", DEFAULT_CLIENT_TOKEN)
        self.GLOBAL_WORKER_TOKEN: str = env.get("GLOBAL_WORKER_TOKEN", DEFAULT_WORKER_TOKEN)
        self.CLIENTS_CONFIG_PATH: str = env.get("CLIENTS_CONFIG_PATH", "")
        self.WORKERS_CONFIG_PATH: str = env.get("WORKERS_CONFIG_PATH", "")
        self.REDIS_URL: str = env.get("REDIS_URL", "")
        self.REDIS_HOST: str = env.get("REDIS_HOST", "")
        self.REDIS_PORT: int = _int(env, "REDIS_PORT", 6379)
        self.REDIS_DB: int = _int(env, "REDIS_DB", 0)
        self.REDIS_KEY_PREFIX: str = env.get("REDIS_KEY_PREFIX", "avtomatika")
        self.HISTORY_DATABASE_URI: str = env.get("HISTORY_DATABASE_URI", "")
        self.HISTORY_ENABLED: bool = _bool(env, "HISTORY_ENABLED", bool(self.HISTORY_DATABASE_URI))
        self.HISTORY_BUFFER_SIZE: int = _int(env, "HISTORY_BUFFER_SIZE", 100_000)
        self.HISTORY_BATCH_SIZE: int = _int(env, "HISTORY_BATCH_SIZE", 500)
        self.HISTORY_FLUSH_SECONDS: float = _float(env, "HISTORY_FLUSH_SECONDS", 0.2)
        self.REPUTATION_WINDOW_SECONDS: int = _int(env, "REPUTATION_WINDOW_SECONDS", 7 * 24 * 3600)
        self.LOG_LEVEL: str = env.get("LOG_LEVEL", "INFO")
        self.LOG_FORMAT: str = env.get("LOG_FORMAT", "text")
        self.WORKER_TIMEOUT_SECONDS: int = _int(env, "WORKER_TIMEOUT_SECONDS", 300)
        self.WORKER_POLL_TIMEOUT_SECONDS: int = _int(env, "WORKER_POLL_TIMEOUT_SECONDS", 30)
        self.WORKER_HEALTH_CHECK_INTERVAL_SECONDS: int = _int(env, "WORKER_HEALTH_CHECK_INTERVAL_SECONDS", 60)
        self.JOB_MAX_RETRIES: int = _int(env, "JOB_MAX_RETRIES", 3)
        self.TASK_RETRY_BASE_SECONDS: float = _float(env, "TASK_RETRY_BASE_SECONDS", 1.0)
        self.JOB_RETRY_BASE_SECONDS: float = _float(env, "JOB_RETRY_BASE_SECONDS", 0.5)
        self.JOB_RETENTION_SECONDS: int = _int(env, "JOB_RETENTION_SECONDS", 7 * 24 * 3600)
        self.MAX_TRANSITIONS_PER_JOB: int = _int(env, "MAX_TRANSITIONS_PER_JOB", 1000)
        self.STEP_STALL_SECONDS: int = _int(env, "STEP_STALL_SECONDS", 120)
        self.STEP_BURST: int = _int(env, "STEP_BURST", 16)
        self.STEP_MAX_DELIVERIES: int = _int(env, "STEP_MAX_DELIVERIES", 5)
        self.WATCHER_INTERVAL_SECONDS: int = _int(env, "WATCHER_INTERVAL_SECONDS", 20)
        self.RATE_LIMITING_ENABLED: bool = _bool(env, "RATE_LIMITING_ENABLED", True)
        self.RATE_LIMIT_CLIENT: str = env.get("RATE_LIMIT_CLIENT", "2000/second")
        self.RATE_LIMIT_WORKER: str = env.get("RATE_LIMIT_WORKER", "1000/second")
        self.MAX_REQUEST_BYTES: int = _int(env, "MAX_REQUEST_BYTES", 1024 * 1024)
        self.MAX_OPEN_WAITS_PER_CLIENT: int = _int(env, "MAX_OPEN_WAITS_PER_CLIENT", 100)
        self.MAX_OPEN_POLLS_PER_WORKER: int = _int(env, "MAX_OPEN_POLLS_PER_WORKER", 64)
        self.IDEMPOTENCY_TTL_SECONDS: int = _int(env, "IDEMPOTENCY_TTL_SECONDS", 24 * 3600)
        self.CELERY_TASK_EVENTS: bool = _bool(env, "CELERY_TASK_EVENTS", False)
        self.CELERY_VISIBILITY_TIMEOUT: int = _int(env, "CELERY_VISIBILITY_TIMEOUT", 60)
        self.EMBEDDED_WORKER_CONCURRENCY: int = _int(env, "EMBEDDED_WORKER_CONCURRENCY", 4)
        self.AVTOMATIKA_ENV: str = env.get("AVTOMATIKA_ENV", "development")
        self.DEBUG_ENDPOINTS: bool = _bool(env, "DEBUG_ENDPOINTS", False)
        self.APPROVAL_WEBHOOK_URL: str = env.get("APPROVAL_WEBHOOK_URL", "")
        self.OTEL_EXPORTER_OTLP_ENDPOINT: str = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
        # tests only: `file:PATH` writes spans as JSON lines instead of exporting them over OTLP
        self.AVTOMATIKA_OTEL_TEST_EXPORTER: str = env.get("AVTOMATIKA_OTEL_TEST_EXPORTER", "")

    @property
    def redis_url(self) -> str:
        """The Redis URL in effect, or "" when Redis is not configured (embedded default)."""
        if self.REDIS_URL:
            return self.REDIS_URL
        if self.REDIS_HOST:
            return f"redis://{self.REDIS_HOST}:{self.REDIS_PORT}/{self.REDIS_DB}"
        return ""

    @property
    def history_url(self) -> str:
        """The history database in effect: `HISTORY_DATABASE_URI`, the SQLite file `avtomatika-history.db` in
        the working directory when history is enabled without one, or "" when history is off."""
        if not self.HISTORY_ENABLED:
            return ""
        return self.HISTORY_DATABASE_URI or DEFAULT_HISTORY_URI

    def as_dict(self) -> dict[str, Any]:
        """Settings without secrets, for logs and diagnostics."""
        hidden = {"CLIENT_TOKEN", "GLOBAL_WORKER_TOKEN"}
        shown = {k: v for k, v in vars(self).items() if k.isupper() and k not in hidden}
        for name in ("HISTORY_DATABASE_URI", "REDIS_URL"):  # a URL may carry a password
            shown[name] = _without_password(shown[name])
        return shown


def _without_password(url: str) -> str:
    """`url` with its password replaced by `***`."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
