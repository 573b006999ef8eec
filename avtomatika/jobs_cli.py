"""`avtomatika jobs list|show|cancel|retry`: the client routes of a running server, from the command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TextIO

import httpx

URL_ENV = "AVTOMATIKA_URL"
TOKEN_ENV = "AVTOMATIKA_CLIENT_TOKEN"
DEFAULT_URL = "http://127.0.0.1:8080"
JOBS_ENV = f"{URL_ENV} (default {DEFAULT_URL}), {TOKEN_ENV} (else CLIENT_TOKEN)"
COLUMNS = ("id", "blueprint_name", "status", "current_state", "error_message")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `avtomatika jobs`."""
    parser = argparse.ArgumentParser(
        prog="avtomatika jobs",
        description="List, show, cancel and retry jobs on a running server (the client routes of the HTTP API).",
        epilog=f"environment: {JOBS_ENV}. Prefer the variable for the token: command lines are visible to others.",
    )
    parser.add_argument("--url", help=f"server base URL (default: ${URL_ENV}, else {DEFAULT_URL})")
    parser.add_argument("--token", help=f"client token (default: ${TOKEN_ENV}, else $CLIENT_TOKEN)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the caller's jobs, most recently changed first (admins: all jobs)")
    listing.add_argument("--status", help="only jobs in this status (e.g. quarantined)")
    listing.add_argument("--blueprint", help="only jobs of this blueprint")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (1-1000, default 100)")
    listing.add_argument("--json", action="store_true", help="print the views as JSON")
    for name, summary in (
        ("show", "print one job's view as JSON"),
        ("cancel", "cancel a job that has not ended"),
        ("retry", "resume a failed or quarantined job at its current state"),
    ):
        actions.add_parser(name, help=summary).add_argument("job_ids", nargs="+", metavar="JOB_ID")
    return parser


def _table(views: list[dict[str, Any]], out: TextIO) -> None:
    rows = [[str(view.get(column) or "") for column in COLUMNS] for view in views]
    widths = [max([len(column), *(len(row[i][:60]) for row in rows)]) for i, column in enumerate(COLUMNS)]
    print("  ".join(column.upper().ljust(width) for column, width in zip(COLUMNS, widths, strict=True)), file=out)
    for row in rows:
        print("  ".join(cell[:60].ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(), file=out)


def _each(ids: Sequence[str], call: Any, label: str, out: TextIO) -> int:
    """Run `call(job_id)` for every id, with a progress bar on a terminal for more than one; 1 if any failed."""
    failed = 0
    for job_id in progress(ids, label):
        answer = call(job_id)
        body = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
        if answer.status_code >= 400:
            failed = 1
            print(f"{job_id}: {answer.status_code} {body.get('error', answer.text)}", file=out)
        else:
            print(f"{job_id}: {body.get('status', answer.status_code)}", file=out)
    return failed


def progress(items: Sequence[Any], label: str) -> Iterator[Any]:
    """`items`, with a progress bar on stderr when it is a terminal and there is more than one item."""
    if len(items) < 2 or not sys.stderr.isatty():
        yield from items
        return
    import click

    with click.progressbar(items, label=label, file=sys.stderr) as bar:
        yield from bar


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None, out: TextIO = sys.stdout) -> int:
    """Entry point; 0 on success, 1 when the server refused something, 2 when it cannot be reached."""
    args = build_parser().parse_args(argv)
    env = os.environ if environ is None else environ
    base = (args.url or env.get(URL_ENV) or DEFAULT_URL).rstrip("/")
    token = args.token or env.get(TOKEN_ENV) or env.get("CLIENT_TOKEN")
    if not token:
        print(f"avtomatika jobs: no client token: set {TOKEN_ENV} or pass --token", file=sys.stderr)
        return 2
    try:
        with httpx.Client(base_url=base, headers={"X-Avtomatika-Token": token}, timeout=30) as http:
            if args.action == "list":
                query = {"status": args.status, "blueprint": args.blueprint, "limit": args.limit}
                answer = http.get("/api/v1/jobs", params={k: v for k, v in query.items() if v is not None})
                if answer.status_code >= 400:
                    print(f"avtomatika jobs: {answer.status_code} {answer.text.strip()}", file=sys.stderr)
                    return 1
                views = answer.json()
                if args.json:
                    print(json.dumps(views, indent=2), file=out)
                else:
                    _table(views, out)
                return 0
            if args.action == "show":
                failed = 0
                for job_id in args.job_ids:
                    answer = http.get(f"/api/v1/jobs/{job_id}")
                    failed |= answer.status_code >= 400
                    print(json.dumps(answer.json(), indent=2), file=out)
                return int(failed)
            return _each(
                args.job_ids, lambda job_id: http.post(f"/api/v1/jobs/{job_id}/{args.action}"), args.action, out
            )
    except httpx.HTTPError as exc:
        print(f"avtomatika jobs: cannot reach {base}: {exc}", file=sys.stderr)
        return 2
