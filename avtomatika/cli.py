"""The `avtomatika` command: demo, run (every role in one process), api (HTTP only)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from .config import Config
from .errors import AvtomatikaError
from .logs import configure_logging


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["worker"]:
        from .worker.cli import main as worker_main

        return worker_main(args_in[1:])
    parser = argparse.ArgumentParser(prog="avtomatika", description="State-machine orchestrator on Celery")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run the bundled demo end to end on the embedded default")
    commands.add_parser("worker", help="run an HTTP worker: avtomatika worker module:attr [--url URL] [--token T]")
    run = commands.add_parser("run", help="run every role of AVTOMATIKA_APP in this process")
    run.add_argument("--app", help="module:attr of the engine (default: $AVTOMATIKA_APP)")
    api = commands.add_parser("api", help="serve only the HTTP API of AVTOMATIKA_APP (use gunicorn in production)")
    api.add_argument("--app", help="module:attr of the engine (default: $AVTOMATIKA_APP)")
    args = parser.parse_args(args_in)
    try:
        config = Config()
        configure_logging(config.LOG_LEVEL if args.command != "demo" else "WARNING", config.LOG_FORMAT)
        if args.command == "demo":
            from .demo import run_demo

            return asyncio.run(run_demo())
        from .loader import load_engine

        engine = load_engine(args.app or os.environ.get("AVTOMATIKA_APP"))
        if args.command == "run":
            engine.run()
            return 0
        from werkzeug.serving import run_simple

        from .security import check_production_tokens

        check_production_tokens(engine.config)
        run_simple(engine.config.API_HOST, engine.config.API_PORT, engine.wsgi_app(), threaded=True)
        return 0
    except AvtomatikaError as exc:
        print(f"avtomatika: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
