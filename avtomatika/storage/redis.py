"""Redis storage: one hash per job (`seq` + JSON `doc`), every check-and-change one Lua script.

Keys of one job share a hash tag (`{job-id}`) so the layout stays Redis Cluster compatible.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..job import Job
from .base import StorageBackend, dumps, loads

_CREATE = """
if KEYS[2] ~= '' then
  local existing = redis.call('GET', KEYS[2])
  if existing then return existing end
  redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[3])
end
redis.call('HSET', KEYS[1], 'seq', 0, 'doc', ARGV[2])
if ARGV[4] ~= '' then redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1]) end
return ARGV[1]
"""
_COMMIT = """
local current = redis.call('HGET', KEYS[1], 'seq')
if not current or tonumber(current) ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'seq', ARGV[2], 'doc', ARGV[3])
if tonumber(ARGV[4]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
if ARGV[5] == '' then redis.call('ZREM', KEYS[2], ARGV[6]) else redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6]) end
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def sync_client(source: Any, **overrides: Any) -> Any:
    """A synchronous `redis.Redis` from a URL, a `redis.Redis` or a `redis.asyncio.Redis` (its settings reused)."""
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError('Redis support needs: pip install "avtomatika[redis]"') from exc
    options: dict[str, Any] = {"socket_timeout": 30, "socket_connect_timeout": 5, "max_connections": 256}
    options.update(overrides)
    if isinstance(source, str):
        return redis.Redis.from_url(source, **options)
    if isinstance(source, redis.Redis):
        return source
    pool = getattr(source, "connection_pool", None)
    if pool is None:
        raise ConfigError(f"RedisStorage needs a URL or a redis client, got {source!r}")
    kwargs = dict(pool.connection_kwargs)
    kwargs.pop("decode_responses", None)
    kwargs.update(options)
    return redis.Redis(**kwargs)


def client_url(client: Any) -> str:
    """The redis:// URL of a client's connection settings (Celery needs a URL)."""
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"redis+socket://{kwargs['path']}?virtual_host={kwargs.get('db', 0)}"
    auth = ""
    if kwargs.get("password"):
        auth = f"{kwargs.get('username') or ''}:{kwargs['password']}@"
    return f"redis://{auth}{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


class RedisStorage(StorageBackend):
    """Job state in Redis; construct with a URL, a `redis.Redis` or a `redis.asyncio.Redis`."""

    def __init__(self, url_or_client: Any = "redis://localhost:6379/0", prefix: str = "avtomatika") -> None:
        self.client = sync_client(url_or_client)
        self.url = url_or_client if isinstance(url_or_client, str) else client_url(self.client)
        self.prefix = prefix
        self._create = self.client.register_script(_CREATE)
        self._commit = self.client.register_script(_COMMIT)
        self._release = self.client.register_script(_RELEASE)

    def job_key(self, job_id: str) -> str:
        """The hash of one job."""
        return f"{self.prefix}:job:{{{job_id}}}"

    @property
    def watch_key(self) -> str:
        """Sorted set of runnable jobs scored by the time after which the sweep treats them as stalled."""
        return f"{self.prefix}:watch"

    def create_job(
        self,
        job: Job,
        *,
        idempotency_key: str | None = None,
        idempotency_ttl: int = 86400,
        watch_until: float | None = None,
    ) -> str:
        job["seq"] = 0
        idem = f"{self.prefix}:idempotency:{idempotency_key}" if idempotency_key is not None else ""
        result = self._create(
            keys=[self.job_key(job["id"]), idem, self.watch_key],
            args=[job["id"], dumps(job), idempotency_ttl, "" if watch_until is None else repr(watch_until)],
        )
        return result.decode() if isinstance(result, bytes) else str(result)

    def get_job(self, job_id: str) -> Job | None:
        seq, doc = self.client.hmget(self.job_key(job_id), ["seq", "doc"])
        if doc is None:
            return None
        job: Job = loads(doc)
        job["seq"] = int(seq)
        return job

    def commit_job(
        self,
        job: Job,
        expected_seq: int,
        *,
        retention_seconds: int | None = None,
        watch_until: float | None = None,
    ) -> bool:
        new_seq = expected_seq + 1
        previous = job.get("seq")
        job["seq"] = new_seq
        ok = self._commit(
            keys=[self.job_key(job["id"]), self.watch_key],
            args=[
                expected_seq,
                new_seq,
                dumps(job),
                int(retention_seconds or 0),
                "" if watch_until is None else repr(watch_until),
                job["id"],
            ],
        )
        if not ok:
            job["seq"] = previous
        return bool(ok)

    def stalled_jobs(self, now: float, limit: int = 100) -> list[str]:
        return [
            m.decode() for m in self.client.zrangebyscore(self.watch_key, "-inf", now, start=0, num=limit)
        ]

    def watch_job(self, job_id: str, watch_until: float | None) -> None:
        if watch_until is None:
            self.client.zrem(self.watch_key, job_id)
        else:
            self.client.zadd(self.watch_key, {job_id: watch_until})

    def acquire_lock(self, name: str, token: str, ttl_seconds: float) -> bool:
        return bool(self.client.set(f"{self.prefix}:lock:{name}", token, nx=True, px=int(ttl_seconds * 1000)))

    def release_lock(self, name: str, token: str) -> bool:
        return bool(self._release(keys=[f"{self.prefix}:lock:{name}"], args=[token]))

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except Exception:  # noqa: BLE001 - any connection failure means "not reachable"
            return False

    def flush(self) -> None:
        keys = list(self.client.scan_iter(match=f"{self.prefix}:*", count=1000))
        for start in range(0, len(keys), 500):
            self.client.delete(*keys[start : start + 500])

    def close(self) -> None:
        self.client.close()
