"""Scenario W3: Redis memory per job waiting for a worker (Redis mode).

A fresh `driver.redis_topology` (bench.apps.worker_app, no HTTP worker). `--warmup` `bench_parked` jobs are
created first (they create the fixed keys: the queue's class hash, the queue set, kombu's bindings, rate-limit
counters), then `INFO memory` is read, `-n` more jobs are created through the API, and once every task waits in
its queue and the step queue is empty `INFO memory` is read again. The growth of `used_memory_dataset` divided by
`-n` is the figure (the key-space hashtable, 8–16 B per key, is in `used_memory_overhead`; `used_memory` growth
is shown beside it).

Then every key of the prefix is grouped by kind (ids replaced by `*`) with its count and `MEMORY USAGE`, and one
job document is broken down by top-level field. A few bench-only keys (`bench:w3:*`, deleted afterwards) store the
same document in other encodings, to show what each would save.

    .venv/bin/python -m bench.w3_memory              # 10,000 parked jobs
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import defaultdict
from typing import Any

from bench.driver import RESULTS, redis_topology
from bench.procs import ROOT
from bench.w1_workers import PREFIX, SCENARIO_APP, park_jobs

TARGET_BYTES = 1536  # 1.5 KB per parked job
_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\d{6,}")


def memory(client: Any) -> dict[str, int]:
    info = client.info("memory")
    keys = ("used_memory", "used_memory_dataset", "used_memory_overhead")
    return {k: int(info[k]) for k in keys} | {"keys": int(client.dbsize())}


def key_kind(key: str) -> str:
    """`avtomatika:job:{<uuid>}` -> `avtomatika:job:{*}`; Celery/kombu keys keep their names."""
    return _ID.sub("*", key)


def census(client: Any) -> dict[str, dict[str, Any]]:
    """Every key grouped by kind: count, total MEMORY USAGE (SAMPLES 0: exact), Redis type and encoding."""
    keys = [k.decode() for k in client.scan_iter(count=1000)]
    kinds: dict[str, dict[str, Any]] = defaultdict(lambda: {"count": 0, "bytes": 0})
    for start in range(0, len(keys), 500):
        batch = keys[start : start + 500]
        pipe = client.pipeline(transaction=False)
        for key in batch:
            pipe.memory_usage(key, samples=0)
        for key, used in zip(batch, pipe.execute(), strict=True):
            entry = kinds[key_kind(key)]
            entry["count"] += 1
            entry["bytes"] += int(used or 0)
            entry.setdefault("example", key)
    for entry in kinds.values():
        entry["type"] = client.type(entry["example"]).decode()
        entry["encoding"] = (client.object("encoding", entry["example"]) or b"").decode()
        if entry["type"] == "zset":
            entry["members"] = int(client.zcard(entry["example"]))
        elif entry["type"] == "hash":
            entry["fields"] = int(client.hlen(entry["example"]))
        elif entry["type"] == "list":
            entry["length"] = int(client.llen(entry["example"]))
    return dict(sorted(kinds.items(), key=lambda kv: -kv[1]["bytes"]))


def doc_breakdown(doc: Any) -> dict[str, Any]:
    """Bytes of each top-level field of a job document as compact JSON (`"key":value,`)."""
    job = json.loads(doc)
    sizes = {k: len(json.dumps({k: v}, separators=(",", ":"))) - 1 for k, v in job.items()}
    return {"doc_bytes": len(doc), "fields": dict(sorted(sizes.items(), key=lambda kv: -kv[1])), "job": job}


def alternatives(client: Any, job_key: str) -> dict[str, int]:
    """MEMORY USAGE of the same job stored other ways, on bench-only keys (deleted afterwards)."""
    seq, doc = client.hmget(job_key, ["seq", "doc"])
    job = json.loads(doc)
    compact = {k: v for k, v in job.items() if v not in (None, {}, [], "", 0, False)}
    compact_doc = json.dumps(compact, separators=(",", ":"))
    probes = {
        "as stored (hash seq+doc)": (job_key, None),
        "string (doc only, seq inside)": ("bench:w3:string", lambda k: client.set(k, doc)),
        "hash, doc without null/empty/zero fields": (
            "bench:w3:compact-hash", lambda k: client.hset(k, mapping={"seq": seq, "doc": compact_doc})),
        "string, doc without null/empty/zero fields": ("bench:w3:compact-string", lambda k: client.set(k, compact_doc)),
    }  # fmt: skip
    out = {}
    try:
        for label, (key, make) in probes.items():
            if make is not None:
                make(key)
            out[label] = int(client.memory_usage(key, samples=0) or 0)
        out["compact doc bytes"] = len(compact_doc)
    finally:
        client.delete(*(k for k, m in probes.values() if m is not None))
    return out


def main(argv: list[str] | None = None) -> int:
    import redis

    from bench.apps.worker_app import PARKED_TYPE

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=10_000, help="parked jobs measured")
    parser.add_argument("--warmup", type=int, default=200, help="parked jobs created before the first reading")
    parser.add_argument("--lanes", type=int, default=32, help="parallel create connections")
    parser.add_argument("--time-limit", type=float, default=300, help="seconds creating and settling may take")
    args = parser.parse_args(argv)

    logdir = RESULTS / "logs" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    logdir.mkdir(parents=True, exist_ok=True)
    with redis_topology(logdir, app=SCENARIO_APP, worker_events=False) as topology:
        client = redis.Redis.from_url(topology.redis_url)
        park_jobs(topology, args.warmup, lanes=args.lanes, time_limit=args.time_limit)
        time.sleep(1.0)
        before = memory(client)
        parked = park_jobs(topology, args.n, lanes=args.lanes, time_limit=args.time_limit)
        time.sleep(1.0)  # acks and rate-limit windows settle
        after = memory(client)
        kinds = census(client)
        job_key = next(entry["example"] for kind, entry in kinds.items() if kind.startswith(f"{PREFIX}:job:"))
        breakdown = doc_breakdown(client.hget(job_key, "doc"))
        other = alternatives(client, job_key)
        config = {k: v for k, v in client.config_get("*-max-listpack-*").items()}
        client.close()

    growth = {k: after[k] - before[k] for k in after}
    per_job = {k: round(v / args.n, 1) for k, v in growth.items()}
    total = args.warmup + args.n
    scaling = {kind: e for kind, e in kinds.items() if e["count"] >= args.n or e.get("members", 0) >= args.n}
    result = {
        "scenario": "w3",
        "mode": "redis",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "params": {"n": args.n, "warmup": args.warmup, "task_type": PARKED_TYPE},
        "parked": parked,
        "before": before,
        "after": after,
        "growth": growth,
        "per_job_bytes": per_job,
        "target_bytes": TARGET_BYTES,
        "met": per_job["used_memory_dataset"] <= TARGET_BYTES,
        "kinds": kinds,
        "per_job_by_kind": {kind: round(e["bytes"] / total, 1) for kind, e in scaling.items()},
        "doc": breakdown,
        "alternatives": other,
        "redis_listpack_config": config,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"w3-redis-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")

    print(f"parked {args.n} jobs ({parked['per_s']} creates/s), keys {before['keys']} -> {after['keys']}")
    for name in ("used_memory_dataset", "used_memory", "used_memory_overhead"):
        print(f"  {name:22} +{growth[name]:>10,} B  = {per_job[name]:8.1f} B/job")
    verdict = "met" if result["met"] else "not met"
    print(f"target <= {TARGET_BYTES} B/job (used_memory_dataset): {verdict}")
    print("\nkeys by kind (MEMORY USAGE, all keys):")
    print(f"  {'kind':46} {'type/encoding':22} {'count':>7} {'bytes':>11} {'B/job':>8}")
    for kind, e in kinds.items():
        share = f"{e['bytes'] / total:8.1f}" if kind in scaling else ""
        size = e.get("members", e.get("fields", e.get("length", "")))
        enc = f"{e['type']}/{e['encoding']}" + (f" ({size})" if size != "" else "")
        print(f"  {kind[:46]:46} {enc[:22]:22} {e['count']:>7} {e['bytes']:>11,} {share}")
    print(f"\njob document: {breakdown['doc_bytes']} B; by field: {breakdown['fields']}")
    print(f"the same job stored otherwise (MEMORY USAGE): {other}")
    print(f"result: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
