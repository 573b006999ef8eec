"""``avtomatika worker module:attr``: run a `Worker` defined in a module.

The connection can be overridden without touching the code: ``--url`` (repeat it, or separate URLs with
commas, for failover) and ``--token``, or the environment variables ``AVTOMATIKA_ORCHESTRATOR_URL`` and
``AVTOMATIKA_WORKER_TOKEN``. Prefer the variable for the token: command lines are visible to other users.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

from ..errors import AvtomatikaError
from ..loader import import_object
from ..logs import configure_logging
from .worker import Worker

URL_VARIABLE = "AVTOMATIKA_ORCHESTRATOR_URL"
TOKEN_VARIABLE = "AVTOMATIKA_WORKER_TOKEN"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the command."""
    parser = argparse.ArgumentParser(
        prog="avtomatika worker",
        description="Run an Avtomatika HTTP worker (an avtomatika.worker.Worker) until SIGTERM or Ctrl-C.",
        epilog=f"environment: {URL_VARIABLE}, {TOKEN_VARIABLE} (prefer it to --token: command lines are visible "
        "to other users)",
    )
    parser.add_argument("app", help="module:attr of the Worker object (attr defaults to `worker`)")
    parser.add_argument(
        "--url",
        action="append",
        default=[],
        help=f"orchestrator base URL; repeat or comma-separate for failover (default: ${URL_VARIABLE} or the code's)",
    )
    parser.add_argument("--token", help=f"worker token (default: ${TOKEN_VARIABLE} or the code's)")
    parser.add_argument("--log-level", type=str.upper, choices=("DEBUG", "INFO", "WARNING", "ERROR"), default="INFO")
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    return parser


def load_worker(spec: str) -> Worker:
    """Import ``module:attr`` (attr defaults to ``worker``) and return the `Worker` found there."""
    try:
        worker = import_object(spec, "worker")
    except ImportError as exc:
        raise AvtomatikaError(str(exc)) from exc
    if not isinstance(worker, Worker):
        raise AvtomatikaError(f"{spec!r}: this is not an avtomatika.worker.Worker")
    return worker


def split_urls(values: Sequence[str]) -> list[str]:
    """URLs from repeated and/or comma-separated values."""
    return [url.strip() for value in values for url in value.split(",") if url.strip()]


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point: load the worker, apply overrides, run it until SIGTERM/SIGINT; returns the exit code."""
    args = build_parser().parse_args(argv)
    env = os.environ if environ is None else environ
    configure_logging(args.log_level, args.log_format)
    try:
        worker = load_worker(args.app)
        urls = split_urls(args.url) or split_urls([env.get(URL_VARIABLE, "")])
        token = args.token or env.get(TOKEN_VARIABLE) or None
        worker.configure_connection(orchestrator_urls=urls or None, token=token)
        worker.run()
    except AvtomatikaError as exc:
        print(f"avtomatika worker: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
