"""Every Redis key of the Redis backend, named in one place for Python and for the Lua scripts.

A key is `<prefix>:<name>` or `<prefix>:<name>:<part>`; a job's hash is `<prefix>:job:{<id>}` (the hash tag
keeps a job's key on one cluster slot). The Lua scripts get the same names as functions of a prelude
(`K.lease(p, task_id)`), generated here and put in front of every script when it is loaded.
"""

from __future__ import annotations

# name -> what the key holds
SINGLE = {
    "watch": "zset: jobs the sweep must look at, scored by when",
    "leases": "zset: task ids by lease expiry",
    "queues": "set: task types that have a queue",
    "workers": "zset: worker ids by record expiry",
    "worker_tokens": "hash: worker id -> token hash (workers.toml)",
    "webhooks": "zset: job ids whose completion webhook is not delivered yet, by when to try next",
    "webhook_attempts": "hash: job id -> delivery attempts so far",
    "metrics": "hash: orchestration metric counters and histogram buckets (field -> amount)",
}
PER_ID = {
    "job": "hash: seq and the JSON record of one job",
    "queue": "zset: queued tasks of one type and requirement class",
    "classes": "hash: requirement classes of one task type (queue -> requirements JSON)",
    "lease": "hash: who holds a task until when",
    "answer": "string: the remembered answer for a finished lease (repeats of a result)",
    "worker": "hash: a worker's record",
    "wtasks": "set: task ids a worker holds",
    "pollers": "zset: open long-polls of one task type",
    "wake": "list: wake-up signal of one long-poll",
    "wscmd": "list: commands for a worker's WebSocket",
    "cancel": "set: cancelled task ids to tell a worker in its next heartbeat",
    "ws": "string: a worker's WebSocket is connected (with a TTL)",
    "ended": "list: signal that a job ended (for `?wait`)",
    "idempotency": "string: first job id of an idempotency key",
    "lock": "string: a named lock",
    "counter": "string: a named counter",
    "deliveries": "string: how often the step `<job id>:<seq>` was delivered again without its commit",
    "gauge": "hash: one gauge's value per process (`<host>:<pid>` -> [value, expires at]), summed when read",
    "quota": "string: job creations of one client in one calendar month (`<client>:<YYYY-MM>`)",
    "branches": "hash: the branches of one fan-out (branch id -> its task record, current attempt)",
    "branch_results": "hash: final outcomes of one fan-out's branches (branch id -> result JSON)",
    "parked": "hash: parked Celery chord contexts of one fan-out's branches (branch id -> context JSON)",
    "by_status": "zset: ids of the jobs in one status, scored by their last change (listing, counts)",
    "secret": "string: a random secret shared by every process (approval tokens are derived from it)",
}


class Keys:
    """Key names under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        # built once: a key is built for nearly every Redis call
        self._single = {name: f"{prefix}:{name}" for name in SINGLE}
        self._per_id = {name: f"{prefix}:{name}:" for name in PER_ID}

    def __call__(self, name: str, part: str | None = None) -> str:
        """The key `name` (one of `SINGLE`), or `name` of `part` (one of `PER_ID`)."""
        if part is None:
            return self._single[name]
        if name == "job":
            return f"{self.prefix}:job:{{{part}}}"
        return self._per_id[name] + part

    @property
    def pattern(self) -> str:
        """A SCAN pattern matching every key under this prefix."""
        return f"{self.prefix}:*"


def lua_prelude() -> str:
    """`local K = {...}`: the same names as Lua functions of the prefix (and the part)."""
    lines = ["local K = {}"]
    for name in SINGLE:
        lines.append(f"K.{name} = function(p) return p .. ':{name}' end")
    for name in PER_ID:
        if name == "job":
            lines.append("K.job = function(p, id) return p .. ':job:{' .. id .. '}' end")
        else:
            lines.append(f"K.{name} = function(p, id) return p .. ':{name}:' .. id end")
    return "\n".join(lines) + "\n"
