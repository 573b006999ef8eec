"""Run the bench engine in embedded mode (HTTP API, Celery worker thread, sweep; MemoryStorage) in this process.

`API_PORT=8123 python -m bench.apps.run_embedded`; stops on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import sys


def main() -> int:
    if os.environ.get("REDIS_URL") or os.environ.get("REDIS_HOST"):
        print("run_embedded: unset REDIS_URL/REDIS_HOST, the embedded mode keeps state in memory", file=sys.stderr)
        return 2
    from bench.apps.bench_app import engine

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    engine.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
