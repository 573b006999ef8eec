"""Scenario S4: Redis memory per job waiting for a human decision (Redis mode).

A fresh redis-server; an engine on it runs `blueprints/approval.py`'s `moderation` jobs with an inline step
scheduler (the steps run in this process, through the real Redis scripts), so no broker messages sit in
Redis. `--warmup` jobs create the fixed keys first; then `INFO memory` is read, `-n` more jobs are created and
run until they wait in `waiting_for_human`, and `INFO memory` is read again. The growth of
`used_memory_dataset` divided by `-n` is the figure (target: at most 1 KB per waiting job).

    .venv/bin/python -m bench.s4_approval_memory          # 10,000 waiting jobs
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

from avtomatika import OrchestratorEngine
from avtomatika.config import Config
from avtomatika.context import ClientConfig
from avtomatika.core import InlineScheduler
from bench.procs import start_redis
from blueprints.approval import moderation

TARGET_BYTES = 1024


def used(client) -> dict[str, int]:
    info = client.info("memory")
    return {k: int(info[k]) for k in ("used_memory", "used_memory_dataset")} | {"keys": int(client.dbsize())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()
    logging.disable(logging.INFO)  # the `log` notifier would print a line per job
    with tempfile.TemporaryDirectory() as logdir:
        redis_service, url = start_redis(Path(logdir))
        try:
            engine = OrchestratorEngine(None, Config({"REDIS_URL": url}))
            engine.register_blueprint(moderation)
            scheduler = InlineScheduler()
            core = engine.build_core(scheduler)
            client = engine.storage.client
            owner = ClientConfig("bench")

            def park(count: int) -> list[str]:
                ids = [core.create_job("moderation", {"title": f"video-{i}.mp4"}, owner)[0] for i in range(count)]
                scheduler.drain(core.run_step)
                return ids

            park(args.warmup)
            before = used(client)
            ids = park(args.n)
            after = used(client)
            waiting = sum(1 for job_id in ids[:200] if engine.storage.get_job(job_id)["status"] == "waiting_for_human")
            per_job = (after["used_memory_dataset"] - before["used_memory_dataset"]) / args.n
            result = {
                "scenario": "S4 approval memory",
                "jobs": args.n,
                "waiting_sample_of_200": waiting,
                "bytes_per_waiting_job_dataset": round(per_job),
                "bytes_per_waiting_job_used_memory": round((after["used_memory"] - before["used_memory"]) / args.n),
                "keys_per_job": round((after["keys"] - before["keys"]) / args.n, 2),
                "job_hash_memory_usage": int(client.memory_usage(engine.storage.job_key(ids[0]), samples=0)),
                "target_bytes": TARGET_BYTES,
                "met": per_job <= TARGET_BYTES,
            }
            print(json.dumps(result, indent=2))
            return 0
        finally:
            redis_service.stop()


if __name__ == "__main__":
    raise SystemExit(main())
