"""The `avtomatika` command: demo, run, api, check, graph, jobs, stack and worker (`avtomatika --help`)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from .config import Config
from .errors import AvtomatikaError
from .logs import configure_logging

APP_ENV = "AVTOMATIKA_APP"
SERVER_ENV = (
    "AVTOMATIKA_APP, API_HOST, API_PORT, REDIS_URL (or REDIS_HOST, REDIS_PORT, REDIS_DB), CLIENT_TOKEN, "
    "GLOBAL_WORKER_TOKEN, CLIENTS_CONFIG_PATH, WORKERS_CONFIG_PATH, AVTOMATIKA_ENV, LOG_LEVEL, LOG_FORMAT and the "
    "other settings of docs/configuration.md"
)


def package_version() -> str:
    """The installed version of the `avtomatika` distribution."""
    try:
        return version("avtomatika")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
        return "unknown"


def _command(commands: Any, name: str, summary: str, environment: str, details: str = "") -> argparse.ArgumentParser:
    """A subcommand whose help names the environment variables it reads."""
    epilog = f"environment: {environment}" + (f"\n\n{details}" if details else "")
    return commands.add_parser(  # type: ignore[no-any-return]
        name,
        help=summary,
        description=summary,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("app", nargs="?", help=f"module:attr of the engine (default: ${APP_ENV})")
    parser.add_argument("--app", dest="app_option", metavar="APP", help=argparse.SUPPRESS)
    parser.add_argument("--host", help="interface to listen on (default: $API_HOST, else 0.0.0.0)")
    parser.add_argument("--port", type=int, help="port to listen on (default: $API_PORT, else 8080)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the command (subcommands `worker`, `jobs` and `stack` parse their own rest)."""
    parser = argparse.ArgumentParser(prog="avtomatika", description="State-machine orchestrator on Celery.")
    parser.add_argument("--version", action="version", version=f"avtomatika {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _command(
        commands,
        "demo",
        "run the bundled demo blueprints end to end on the embedded default (no servers needed)",
        "none (the demo runs in memory on a free loopback port)",
    ).add_argument("--json", action="store_true", help="print every job's full view as JSON at the end")
    _command(
        commands,
        "worker",
        "run an HTTP worker (avtomatika.worker.Worker): avtomatika worker module:attr",
        "AVTOMATIKA_ORCHESTRATOR_URL, AVTOMATIKA_WORKER_TOKEN",
        "See `avtomatika worker --help` for its options.",
    ).add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    _serve_options(
        _command(
            commands,
            "run",
            (
                "run every role of the engine, as `engine.run()` does: HTTP API, step workers and the sweep (embedded "
                "default: all in this process; with Redis: the API and a Celery worker as child processes)"
            ),
            SERVER_ENV,
        )
    )
    _serve_options(
        _command(
            commands,
            "api",
            "serve only the HTTP API of the engine (development server; use gunicorn in production)",
            SERVER_ENV,
        )
    )
    check = _command(
        commands,
        "check",
        "validate the engine's blueprints and configuration files; list the problems, exit 1 when there are any",
        "AVTOMATIKA_APP, CLIENTS_CONFIG_PATH, WORKERS_CONFIG_PATH, AVTOMATIKA_ENV, CLIENT_TOKEN, GLOBAL_WORKER_TOKEN, "
        "REDIS_URL (or REDIS_HOST): Redis is pinged when set",
    )
    check.add_argument("app", nargs="?", help=f"module:attr of the engine (default: ${APP_ENV})")
    graph = _command(
        commands,
        "graph",
        "print a blueprint's state graph as DOT (or SVG with --format svg, which needs graphviz's `dot`)",
        "only the settings the application module itself reads (docs/configuration.md); APP names the engine",
        "Render it yourself: avtomatika graph my_app:engine my_blueprint | dot -Tpng > graph.png",
    )
    graph.add_argument("app", help="module:attr of the engine")
    graph.add_argument("blueprint", help="the blueprint's name")
    graph.add_argument("--format", choices=("dot", "svg"), default="dot")
    from .jobs_cli import JOBS_ENV
    from .stack import STACK_ENV

    _command(
        commands,
        "jobs",
        "list, show, cancel and retry jobs on a running server: avtomatika jobs list|show|cancel|retry",
        JOBS_ENV,
        "See `avtomatika jobs --help` for its options.",
    ).add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    _command(
        commands,
        "stack",
        "start (up) or stop (down) a local production stack on loopback ports: redis-server, gunicorn, "
        "two Celery workers, beat, Flower (and PostgreSQL with --history)",
        STACK_ENV,
        "See `avtomatika stack --help` for its options.",
    ).add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args_in = sys.argv[1:] if argv is None else argv
    delegated = {"worker": "worker.cli", "jobs": "jobs_cli", "stack": "stack"}
    if args_in[:1] and args_in[0] in delegated:
        import importlib

        module = importlib.import_module(f"avtomatika.{delegated[args_in[0]]}")
        return int(module.main(args_in[1:]))
    args = build_parser().parse_args(args_in)
    try:
        config = Config()
        if args.command == "demo":
            configure_logging("WARNING", config.LOG_FORMAT)
            from .demo import run_demo

            return asyncio.run(run_demo(as_json=args.json))
        if args.command == "check":
            configure_logging("ERROR", config.LOG_FORMAT)
            from .checks import print_checks

            return print_checks(args.app or os.environ.get(APP_ENV))
        if args.command == "graph":
            return _graph(args)
        configure_logging(config.LOG_LEVEL, config.LOG_FORMAT)
        return _serve(args)
    except AvtomatikaError as exc:
        print(f"avtomatika: {exc}", file=sys.stderr)
        return 2


def _graph(args: argparse.Namespace) -> int:
    from .loader import load_engine

    configure_logging("ERROR")
    engine = load_engine(args.app)
    content, _ = engine.service.graph(args.blueprint, args.format)
    sys.stdout.write(content.decode())
    return 0


def _serve(args: argparse.Namespace) -> int:
    from .loader import check_storage, load_engine
    from .security import check_production_tokens

    engine = load_engine(args.app or args.app_option or os.environ.get(APP_ENV))
    if args.host:
        engine.config.API_HOST = args.host
    if args.port is not None:
        engine.config.API_PORT = args.port
    check_storage(engine)
    if args.command == "run":
        engine.run()
        return 0
    from werkzeug.serving import run_simple

    check_production_tokens(engine.config)
    app = engine.wsgi_app()
    from .runner import announce

    announce(engine, engine.config.API_PORT)
    run_simple(engine.config.API_HOST, engine.config.API_PORT, app, threaded=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
