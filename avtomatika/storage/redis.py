"""Redis storage: one hash per job (`seq` + JSON `doc`), every check-and-change one Lua script.

Key names are defined in `keys.py` (prefix `avtomatika` by default); the scripts are `lua/*.lua`, loaded
once (`scripts.py`).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any

from ..errors import ConfigError, QuotaExceeded, TokensNotLoaded
from ..job import JOB_STATUSES, Job, pack_job, unpack_job
from ..ops import JobChanges
from ..quotas import Quota
from ..tasks import Claim, Lease, QueueEntry
from . import scripts
from .base import StorageBackend, dumps, loads
from .keys import Keys

_CONNECTION_SETTINGS = (
    "host",
    "port",
    "db",
    "username",
    "password",
    "path",
    "ssl",
    "ssl_keyfile",
    "ssl_certfile",
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "client_name",
)


def unreachable(url: str, client: Any = None) -> str:
    """An empty string when the Redis at `url` (through `client`, or a short-lived one) answers a PING, else one
    line saying where it is not reachable and why, with any password masked."""
    import redis

    probe = client or sync_client(url, socket_timeout=1.5, socket_connect_timeout=1.5, max_connections=1)
    try:
        probe.ping()
    except redis.RedisError as exc:
        where = re.sub(r"//[^@/]*@", "//***@", url)
        return f"cannot reach Redis at {where}: {exc}"
    finally:
        if client is None:
            probe.close()
    return ""


def sync_client(source: Any, **overrides: Any) -> Any:
    """A synchronous bytes-mode `redis.Redis` from a URL, a `redis.Redis` or a `redis.asyncio.Redis`.

    A given client's connection settings (host, port, db, credentials, TLS) are reused; the client itself is
    not, because this backend needs raw bytes replies and its own pool size and timeouts.
    """
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError('Redis support needs: pip install "avtomatika[redis]"') from exc
    options: dict[str, Any] = {
        # Named here, redis-py does not look its own version up in the installed packages' metadata for each
        # new connection (~10 ms each under gevent, most of an API process's first requests).
        "lib_name": "redis-py",
        "lib_version": getattr(redis, "__version__", "unknown"),
        "socket_timeout": 10,
        "socket_connect_timeout": 5,
        "socket_keepalive": True,
        "max_connections": 4096,
    }
    options.update(overrides)
    if isinstance(source, str):
        return redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(source, timeout=30, **options))
    given = getattr(source, "connection_pool", None)
    if given is None:
        raise ConfigError(f"RedisStorage needs a URL or a redis client, got {source!r}")
    kwargs = {k: v for k, v in given.connection_kwargs.items() if k in _CONNECTION_SETTINGS}
    if "path" in kwargs:
        kwargs.pop("host", None)
        kwargs.pop("port", None)
        kwargs["unix_socket_path"] = kwargs.pop("path")
    max_connections = options.pop("max_connections")
    return redis.Redis(**kwargs, **options, max_connections=max_connections)


def client_url(client: Any) -> str:
    """The redis:// URL of a client's connection settings (Celery needs a URL)."""
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"redis+socket://{kwargs['path']}?virtual_host={kwargs.get('db', 0)}"
    auth = ""
    if kwargs.get("password"):
        auth = f"{kwargs.get('username') or ''}:{kwargs['password']}@"
    return f"redis://{auth}{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


LOADED = "__loaded__"  # marker field of the worker token table
BLOCKING_SOCKET_TIMEOUT = 120.0  # above the longest blocking wait (a long-poll or `?wait`, at most ~60 s)
POLL_ENTRY_GRACE = 5.0  # poll entries that ended this long ago are purged


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisStorage(StorageBackend):
    """Job state in Redis; construct with a URL, a `redis.Redis` or a `redis.asyncio.Redis`."""

    def __init__(self, url_or_client: Any = "redis://localhost:6379/0", prefix: str = "avtomatika") -> None:
        self.client = sync_client(url_or_client)
        self.url = url_or_client if isinstance(url_or_client, str) else client_url(self.client)
        # Long blocking calls (BLPOP of long-polls, `?wait`) need a longer socket timeout than any wait they
        # make (polls up to WORKER_POLL_TIMEOUT_SECONDS, `?wait` up to 60 s), but never none: a Redis that
        # stops answering must not hold a request for ever.
        self.blocking = sync_client(self.url, socket_timeout=BLOCKING_SOCKET_TIMEOUT)
        # The health check answers within ~2 s even when Redis hangs.
        self.health = sync_client(self.url, socket_timeout=1.5, socket_connect_timeout=1.5, max_connections=8)
        self.prefix = prefix
        self.keys = Keys(prefix)
        self._create = self.client.register_script(scripts.source("create_job"))
        self._commit = self.client.register_script(scripts.source("commit_job"))
        self._claim = self.client.register_script(scripts.source("claim_task"))
        self._claim_webhook = self.client.register_script(scripts.source("claim_webhook"))
        self._record_branch = self.client.register_script(scripts.source("record_branch"))
        self._park_branch = self.client.register_script(scripts.source("park_branch"))
        self._heartbeat = self.client.register_script(scripts.source("heartbeat"))
        self._set_reputations = self.client.register_script(scripts.source("set_reputations"))
        self._sample_pollers = self.client.register_script(scripts.source("sample_pollers"))
        self._release = self.client.register_script(scripts.source("release_lock"))
        self._replace_hash = self.client.register_script(scripts.source("replace_hash"))
        self._lease_progress = self.client.register_script(scripts.source("lease_progress"))

    def unreachable(self) -> str:
        """An empty string when Redis answers a PING, else one line saying where it is not reachable and why."""
        return unreachable(self.url, self.health)

    def key(self, name: str, part: str | None = None) -> str:
        """A key under this storage's prefix (names: `keys.SINGLE`, `keys.PER_ID`)."""
        return self.keys(name, part)

    def job_key(self, job_id: str) -> str:
        """The hash of one job (hash tag on the id keeps a job's keys on one cluster slot)."""
        return self.keys("job", job_id)

    @property
    def watch_key(self) -> str:
        """Sorted set of jobs scored by the time the sweep must look at them."""
        return self.key("watch")

    # -- jobs ---------------------------------------------------------------------------------------------

    def create_job(
        self,
        job: Job,
        *,
        idempotency_key: str | None = None,
        idempotency_ttl: int = 86400,
        watch_until: float | None = None,
        publish: tuple[str, str] | None = None,
        quota: Quota | None = None,
    ) -> str:
        job["seq"] = 0
        idem = self.key("idempotency", idempotency_key) if idempotency_key is not None else ""
        queue, message = publish if publish is not None else ("", "")
        result = self._create(
            keys=[self.job_key(job["id"]), idem, self.watch_key, self.key("quota", quota.key) if quota else ""],
            args=[
                job["id"],
                pack_job(job),
                idempotency_ttl,
                "" if watch_until is None else repr(watch_until),
                queue,
                message,
                job["status"],
                repr(float(job.get("created_at") or time.time())),
                self.prefix,
                quota.limit if quota else 0,
                quota.expires_at if quota else 0,
            ],
        )
        if result is None:
            assert quota is not None  # only a quota check answers nil
            raise QuotaExceeded("monthly job quota exhausted", quota.retry_after(), limit=quota.limit)
        return _text(result)

    def get_job(self, job_id: str) -> Job | None:
        seq, doc = self.client.hmget(self.job_key(job_id), ["seq", "doc"])
        if doc is None:
            return None
        return unpack_job(doc, job_id, int(seq))

    def commit_job_changes(
        self,
        job: Job,
        expected_seq: int,
        changes: JobChanges,
        *,
        retention_seconds: int | None = None,
        watch_until: float | None = None,
    ) -> str:
        previous = job.get("seq")
        job["seq"] = expected_seq + 1
        result = _text(
            self._commit(
                keys=[self.job_key(job["id"]), self.watch_key],
                args=[
                    expected_seq,
                    expected_seq + 1,
                    pack_job(job),
                    int(retention_seconds or 0),
                    "" if watch_until is None else repr(watch_until),
                    job["id"],
                    self.prefix,
                    self._changes_json(changes),
                    job["status"],
                    repr(float(job.get("updated_at") or time.time())),
                ],
            )
        )
        if result != "ok":
            job["seq"] = previous
        return result

    @staticmethod
    def _changes_json(changes: JobChanges) -> str:
        return json.dumps(changes.wire()) if changes.ops else ""

    def list_jobs(self, status: str, limit: int = 100, offset: int = 0) -> list[Job]:
        key = self.key("by_status", status)
        ids = [_text(i) for i in self.client.zrevrange(key, offset, offset + limit - 1)]
        pipe = self.client.pipeline(transaction=False)
        for job_id in ids:
            pipe.hmget(self.job_key(job_id), ["seq", "doc"])
        found: list[Job] = []
        gone = []
        for job_id, (seq, doc) in zip(ids, pipe.execute(), strict=True):
            if doc is None:
                gone.append(job_id)  # expired after its retention: drop it from the index
                continue
            job = unpack_job(doc, job_id, int(seq))
            if job["status"] == status:
                found.append(job)
        if gone:
            self.client.zrem(key, *gone)
        return found

    def count_jobs(self) -> dict[str, int]:
        pipe = self.client.pipeline(transaction=False)
        for status in JOB_STATUSES:
            pipe.zcard(self.key("by_status", status))
        return dict(zip(JOB_STATUSES, (int(n) for n in pipe.execute()), strict=True))

    def trim_job_index(self, status: str, before: float) -> int:
        return int(self.client.zremrangebyscore(self.key("by_status", status), "-inf", before))

    def wait_for_job_end(self, job_id: str, timeout: float) -> bool:
        key = self.key("ended", job_id)
        found = self.blocking.blpop([key], timeout=min(max(timeout, 0.01), BLOCKING_SOCKET_TIMEOUT - 20))
        if found:  # put the signal back for other clients waiting for the same job (it expires in 5 s)
            pipe = self.client.pipeline(transaction=False)
            pipe.rpush(key, 1)
            pipe.expire(key, 5)
            pipe.execute()
        return bool(found)

    def stalled_jobs(self, now: float, limit: int = 100) -> list[str]:
        return [_text(m) for m in self.client.zrangebyscore(self.watch_key, "-inf", now, start=0, num=limit)]

    def watch_job(self, job_id: str, watch_until: float | None) -> None:
        if watch_until is None:
            self.client.zrem(self.watch_key, job_id)
        else:
            self.client.zadd(self.watch_key, {job_id: watch_until})

    # -- tasks --------------------------------------------------------------------------------------------

    def claim_task(
        self,
        worker_id: str,
        task_types: list[str],
        caps: dict[str, Any],
        now: float,
        worker_ttl: float,
        poll: str = "",
        poll_until: float = 0.0,
        max_active: int = 0,
    ) -> Claim | None:
        if not task_types:
            return None
        found = self._claim(
            args=[
                self.prefix,
                worker_id,
                repr(now),
                worker_ttl,
                json.dumps(caps),
                poll,
                repr(poll_until),
                int(max_active),
                *task_types,
            ]  # fmt: skip
        )
        if not found:
            return None
        task_id, job_id, task_type, deadline, seq, doc = (_text(v) for v in found[:6])
        job: Job | None = None
        if doc:
            job = unpack_job(doc, job_id, int(seq))
        branch = dict(loads(found[7])) if len(found) > 7 and found[7] else None
        return Claim(task_id, job_id, task_type, worker_id, float(deadline), job, int(found[6]), branch)

    def get_lease(self, task_id: str) -> Lease | None:
        fields = self.client.hgetall(self.key("lease", task_id))
        return self._lease(task_id, fields)

    def record_lease_progress(self, task_id: str, worker_id: str, progress: dict[str, Any]) -> bool:
        return bool(self._lease_progress(keys=[self.key("lease", task_id)], args=[worker_id, dumps(progress)]))

    def get_leases(self, task_ids: list[str]) -> list[Lease | None]:
        pipe = self.client.pipeline(transaction=False)
        for task_id in task_ids:
            pipe.hgetall(self.key("lease", task_id))
        return [self._lease(t, f) for t, f in zip(task_ids, pipe.execute(), strict=True)]

    @staticmethod
    def _lease(task_id: str, fields: dict[bytes, bytes]) -> Lease | None:
        if not fields:
            return None
        return Lease(
            task_id,
            _text(fields[b"job_id"]),
            _text(fields[b"worker_id"]),
            float(fields[b"deadline"]),
            _text(fields.get(b"type", b"")),
            loads(fields[b"progress"]) if b"progress" in fields else None,
        )

    def expired_leases(self, now: float, limit: int = 100) -> list[Lease]:
        task_ids = [_text(t) for t in self.client.zrangebyscore(self.key("leases"), "-inf", now, start=0, num=limit)]
        pipe = self.client.pipeline(transaction=False)
        for task_id in task_ids:
            pipe.hgetall(self.key("lease", task_id))
        leases = []
        for task_id, fields in zip(task_ids, pipe.execute(), strict=True):
            lease = self._lease(task_id, fields)
            if lease is None:
                self.client.zrem(self.key("leases"), task_id)
            else:
                leases.append(lease)
        return leases

    def drop_lease(self, task_id: str) -> None:
        lease = self.get_lease(task_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.key("lease", task_id))
        pipe.zrem(self.key("leases"), task_id)
        if lease is not None:
            pipe.srem(self.key("wtasks", lease.worker_id), task_id)
        pipe.execute()

    def result_answer(self, task_id: str, worker_id: str) -> str | None:
        stored = self.client.get(self.key("answer", task_id))
        if stored is None:
            return None
        holder, _, answer = _text(stored).partition("|")
        return answer if holder == worker_id else None

    def queue_length(self, task_type: str) -> int:
        queues = [_text(q) for q in self.client.hkeys(self.key("classes", task_type))]
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            pipe.zcard(self.key("queue", queue))
        return sum(int(n) for n in pipe.execute())

    def queue_types(self) -> list[str]:
        return sorted(_text(t) for t in self.client.smembers(self.key("queues")))

    def queue_classes(self, task_type: str) -> list[str]:
        return sorted(_text(q) for q in self.client.hkeys(self.key("classes", task_type)))

    # -- workers ------------------------------------------------------------------------------------------

    def save_worker(self, worker: dict[str, Any], ttl: float, now: float) -> None:
        key = self.key("worker", worker["worker_id"])
        static = {k: v for k, v in worker.items() if k not in ("status", "load", "last_seen")}
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(
            key,
            mapping={
                "doc": dumps(static),
                "status": worker.get("status", "idle"),
                "load": repr(float(worker.get("load", 0.0))),
                "last_seen": repr(now),
            },
        )
        pipe.expire(key, int(max(1, ttl)))
        pipe.zadd(self.key("workers"), {worker["worker_id"]: now + ttl})
        pipe.execute()

    @staticmethod
    def _worker(fields: dict[bytes, bytes]) -> dict[str, Any] | None:
        if not fields or b"doc" not in fields:
            return None
        record: dict[str, Any] = loads(fields[b"doc"])
        record["status"] = _text(fields.get(b"status", b"idle"))
        record["load"] = float(fields.get(b"load", b"0"))
        record["last_seen"] = float(fields.get(b"last_seen", b"0"))
        for name, value in fields.items():
            if name.startswith(b"f:"):  # a field a heartbeat changed
                record[_text(name[2:])] = loads(value)
        return record

    def get_workers(self, worker_ids: list[str]) -> list[dict[str, Any] | None]:
        pipe = self.client.pipeline(transaction=False)
        for worker_id in worker_ids:
            pipe.hgetall(self.key("worker", worker_id))
        return [self._worker(fields) for fields in pipe.execute()]

    def list_workers(self) -> list[dict[str, Any]]:
        ids = [_text(w) for w in self.client.zrange(self.key("workers"), 0, -1)]
        return [w for w in self.get_workers(ids) if w is not None]

    def heartbeat_worker(
        self, worker_id: str, ttl: float, now: float, updates: dict[str, Any] | None
    ) -> tuple[dict[str, Any] | None, list[str]]:
        updates = updates or {}
        status = str(updates["status"]) if "status" in updates else ""
        load = repr(float(updates["load"])) if "load" in updates else ""
        others = [item for k, v in updates.items() if k not in ("status", "load") for item in (k, dumps(v))]
        found = self._heartbeat(args=[self.prefix, worker_id, repr(now), ttl, status, load, *others])
        if not found:
            return None, []
        flat, cancels = found
        fields = {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}
        return self._worker(fields), sorted(_text(c) for c in cancels)

    def set_reputations(self, values: dict[str, float]) -> None:
        if values:
            self._set_reputations(args=[self.prefix, *(item for w, r in values.items() for item in (w, dumps(r)))])

    def active_tasks(self, worker_ids: list[str]) -> list[int]:
        pipe = self.client.pipeline(transaction=False)
        for worker_id in worker_ids:
            pipe.scard(self.key("wtasks", worker_id))
        return [int(n) for n in pipe.execute()]

    def expired_workers(self, now: float) -> list[str]:
        key = self.key("workers")
        pipe = self.client.pipeline(transaction=True)
        pipe.zrangebyscore(key, "-inf", now)
        pipe.zremrangebyscore(key, "-inf", now)
        gone, _ = pipe.execute()
        return [_text(w) for w in gone]

    def purge_expired(self, now: float) -> int:
        # An API process that dies mid-poll never removes its poll entries; readers already skip them (their
        # score, the poll's end, is past), so this only frees their memory.
        pipe = self.client.pipeline(transaction=False)
        for key in self.client.scan_iter(match=self.key("pollers", "*"), count=1000):
            pipe.zremrangebyscore(key, "-inf", now - POLL_ENTRY_GRACE)
        return sum(int(n) for n in pipe.execute())

    def set_poller(self, worker_id: str, task_types: list[str], until: float | None) -> None:
        pipe = self.client.pipeline(transaction=False)
        for task_type in task_types:
            if until is None:
                pipe.zrem(self.key("pollers", task_type), worker_id)
            else:
                pipe.zadd(self.key("pollers", task_type), {worker_id: until})
        pipe.execute()

    def pollers(self, task_type: str, now: float) -> list[str]:
        return [_text(w) for w in self.client.zrangebyscore(self.key("pollers", task_type), now, "+inf")]

    def sample_pollers(self, task_type: str, now: float, size: int, start: float) -> list[str]:
        found = self._sample_pollers(keys=[self.key("pollers", task_type)], args=[repr(now), size, repr(start)])
        return [_text(p) for p in found]

    def wake(self, worker_id: str) -> None:
        key = self.key("wake", worker_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(key, 1)
        pipe.expire(key, 120)
        pipe.execute()

    def wait_for_wake(self, worker_id: str, timeout: float) -> bool:
        key = self.key("wake", worker_id)
        found = self.blocking.blpop([key], timeout=min(max(timeout, 0.01), BLOCKING_SOCKET_TIMEOUT - 20))
        if found:
            self.client.delete(key)  # several wakes while busy are one reason to look again
        return bool(found)

    def push_command(self, worker_id: str, command: dict[str, Any]) -> None:
        self.client.rpush(self.key("wscmd", worker_id), dumps(command))

    def pop_commands(self, worker_id: str, timeout: float) -> list[dict[str, Any]]:
        key = self.key("wscmd", worker_id)
        first = self.blocking.blpop([key], timeout=min(max(timeout, 0.01), BLOCKING_SOCKET_TIMEOUT - 20))
        if not first:
            return []
        commands = [loads(first[1])]
        pipe = self.client.pipeline(transaction=True)
        pipe.lrange(key, 0, -1)
        pipe.delete(key)
        rest, _ = pipe.execute()
        return commands + [loads(c) for c in rest]

    def set_ws_connected(self, worker_id: str, ttl: float | None) -> None:
        if ttl is None:
            self.client.delete(self.key("ws", worker_id))
        else:
            self.client.set(self.key("ws", worker_id), 1, px=int(ttl * 1000))

    def ws_connected(self, worker_id: str) -> bool:
        return bool(self.client.exists(self.key("ws", worker_id)))

    def replace_worker_tokens(self, hashes: dict[str, str]) -> None:
        args: list[str] = [LOADED, "1"]  # the table exists even when no worker has its own token
        for worker_id, token_hash in hashes.items():
            args += [f"id:{worker_id}", token_hash, f"hash:{token_hash}", worker_id]
        self._replace_hash(keys=[self.key("worker_tokens")], args=args)

    def worker_token_hash(self, worker_id: str) -> str | None:
        return self._token_lookup(f"id:{worker_id}")

    def worker_token_owner(self, token_hash: str) -> str | None:
        return self._token_lookup(f"hash:{token_hash}")

    def _token_lookup(self, field: str) -> str | None:
        found, loaded = self.client.hmget(self.key("worker_tokens"), [field, LOADED])
        if loaded is None:
            raise TokensNotLoaded("the worker token table is missing from Redis")
        return None if found is None else _text(found)

    def next_counter(self, name: str) -> int:
        return int(self.client.incr(self.key("counter", name)))

    def count_delivery(self, job_id: str, seq: int, ttl_seconds: float) -> int:
        key = self.key("deliveries", f"{job_id}:{seq}")
        pipe = self.client.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, max(int(ttl_seconds), 1))
        count, _ = pipe.execute()
        return int(count)

    # -- coordination -------------------------------------------------------------------------------------

    def branch(self, job_id: str, branch_id: str) -> dict[str, Any] | None:
        found = self.client.hget(self.key("branches", job_id), branch_id)
        return None if found is None else dict(loads(found))

    def branch_and_job(self, job_id: str, branch_id: str) -> tuple[dict[str, Any] | None, Job | None]:
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(self.key("branches", job_id), branch_id)
        pipe.hmget(self.job_key(job_id), ["seq", "doc"])
        found, (seq, doc) = pipe.execute()
        record = None if found is None else dict(loads(found))
        return record, None if doc is None else unpack_job(doc, job_id, int(seq))

    def branch_records(self, job_id: str) -> dict[str, dict[str, Any]]:
        return {_text(k): loads(v) for k, v in self.client.hgetall(self.key("branches", job_id)).items()}

    def branch_results(self, job_id: str) -> dict[str, dict[str, Any]]:
        return {_text(k): loads(v) for k, v in self.client.hgetall(self.key("branch_results", job_id)).items()}

    def branches_done(self, job_id: str) -> int:
        return int(self.client.hlen(self.key("branch_results", job_id)))

    def record_branch(
        self,
        job_id: str,
        branch_id: str,
        task_id: str,
        worker_id: str,
        answer: str,
        result: dict[str, Any] | None,
        next_attempt: dict[str, Any] | None = None,
        enqueue: QueueEntry | None = None,
        native_lease: Lease | None = None,
        publish: tuple[str, str] | None = None,
    ) -> tuple[str, int, str]:
        queued = ["", "", "", "", ""]
        if enqueue is not None:
            e = enqueue
            queued = [repr(e.score), e.queue, e.member, e.task_type, e.requirements_json]
        leased = ["", "", ""]
        if native_lease is not None:
            leased = [native_lease.task_id, repr(native_lease.deadline), native_lease.task_type]
        found = self._record_branch(
            args=[
                self.prefix,
                job_id,
                branch_id,
                task_id,
                worker_id,
                answer,
                "" if result is None else dumps(result),
                "" if next_attempt is None else dumps(next_attempt),
                *queued,
                *leased,
                *(publish if publish is not None else ("", "")),
            ]
        )
        return _text(found[0]), int(found[1]), _text(found[2])

    def park_branch(self, job_id: str, branch_id: str, context: str) -> dict[str, Any] | None:
        found = self._park_branch(args=[self.prefix, job_id, branch_id, context])
        return None if not found else dict(loads(found))

    def parked_branches(self, job_id: str) -> dict[str, str]:
        return {_text(k): _text(v) for k, v in self.client.hgetall(self.key("parked", job_id)).items()}

    def unpark_branch(self, job_id: str, branch_id: str) -> None:
        self.client.hdel(self.key("parked", job_id), branch_id)

    def drop_branches(self, job_id: str) -> None:
        self.client.delete(self.key("branches", job_id), self.key("branch_results", job_id), self.key("parked", job_id))

    def claim_webhook(self, job_id: str, now: float, lease: float) -> int | None:
        attempt = self._claim_webhook(args=[self.prefix, job_id, repr(now), repr(lease)])
        return int(attempt) if attempt else None

    def finish_webhook(self, job_id: str, retry_at: float | None) -> None:
        pipe = self.client.pipeline(transaction=True)
        if retry_at is None:
            pipe.zrem(self.key("webhooks"), job_id)
            pipe.hdel(self.key("webhook_attempts"), job_id)
        else:
            pipe.zadd(self.key("webhooks"), {job_id: retry_at}, xx=True)
        pipe.execute()

    def due_webhooks(self, now: float, limit: int = 100) -> list[str]:
        return [_text(j) for j in self.client.zrangebyscore(self.key("webhooks"), "-inf", now, start=0, num=limit)]

    def shared_secret(self, name: str) -> str:
        key = self.key("secret", name)
        self.client.set(key, secrets.token_hex(32), nx=True)
        return _text(self.client.get(key))

    def acquire_lock(self, name: str, token: str, ttl_seconds: float) -> bool:
        return bool(self.client.set(self.key("lock", name), token, nx=True, px=int(ttl_seconds * 1000)))

    def release_lock(self, name: str, token: str) -> bool:
        return bool(self._release(keys=[self.key("lock", name)], args=[token]))

    def ping(self) -> bool:
        try:
            return bool(self.health.ping())
        except Exception:  # noqa: BLE001 - any connection failure means "not reachable"
            return False

    def add_to_counters(self, amounts: dict[str, float]) -> None:
        if amounts:
            pipe = self.client.pipeline(transaction=False)
            key = self.key("metrics")
            for name, amount in amounts.items():
                pipe.hincrbyfloat(key, name, amount)
            pipe.execute()

    def counters(self) -> dict[str, float]:
        return {_text(name): float(value) for name, value in self.client.hgetall(self.key("metrics")).items()}

    def report_gauge(self, name: str, member: str, value: float, expires: float) -> None:
        self.client.hset(self.key("gauge", name), member, json.dumps([value, expires]))

    def gauge_total(self, name: str, now: float) -> float:
        key = self.key("gauge", name)
        total, expired = 0.0, []
        for member, raw in self.client.hgetall(key).items():
            value, expires = json.loads(raw)
            if expires <= now:
                expired.append(member)
            else:
                total += float(value)
        if expired:
            self.client.hdel(key, *expired)
        return total

    def flush(self) -> None:
        keys = list(self.client.scan_iter(match=self.keys.pattern, count=1000))
        for start in range(0, len(keys), 500):
            self.client.delete(*keys[start : start + 500])

    def close(self) -> None:
        self.client.close()
        self.blocking.close()
        self.health.close()
