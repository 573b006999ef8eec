"""Run a bench engine through the seed's entry point, `engine.run()`, and stop on SIGTERM or Ctrl-C.

`API_PORT=8123 python -m bench.apps.run_embedded` runs the embedded default (MemoryStorage); with `REDIS_URL` set the
engine runs on Redis; `BENCH_APP=bench.apps.worker_app` picks the engine of the worker benchmarks.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys


def main() -> int:
    app = os.environ.get("BENCH_APP", "bench.apps.bench_app")
    os.environ.setdefault("AVTOMATIKA_APP", f"{app}:engine")  # what the roles load when they are child processes
    engine = importlib.import_module(app).engine

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    engine.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
