"""Summarise py-spy collapsed stacks (`--format raw`, written by `--profile`): where the samples go.

    .venv/bin/python -m bench.profile_summary bench/results/profiles/s1-redis-api-*.txt [--top 30] [--grep avtomatika]
    .venv/bin/python -m bench.profile_summary FILE --under schedule_step     # what one function's time is made of

Prints the share of samples per function, inclusive (the function or anything it calls) and self, with
process names collapsed so the gunicorn master/worker or Celery parent/children add up per role.
Samples in idle frames (epoll/select waits, blocking reads, condition waits) are counted separately.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

_IDLE = re.compile(
    r"^(select|poll|epoll_wait|wait|_wait_for_tstate_lock|run \(gevent/hub|_run_callbacks|sleep|accept|recv"
    r"|recv_into|readline|_read_from_socket|read \(|blpop|brpop)"
)
_PROCESS = re.compile(r'^process (\d+):"([^"]*)"$')


def parse(path: Path) -> list[tuple[list[str], int]]:
    """[(frames root-first, samples)] of one raw py-spy file; process frames become `process <role>`."""
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = []
        for frame in stack.split(";"):
            match = _PROCESS.match(frame)
            if match:
                cmd = match.group(2)
                frames = [f"process {_role(cmd)}"]  # the innermost process frame names the process
                continue
            frames.append(frame)
        stacks.append((frames, int(count)))
    return stacks


def _role(cmd: str) -> str:
    if "gunicorn" in cmd:
        return "gunicorn"
    if "celery" in cmd:
        return "celery"
    return cmd.split()[0].rsplit("/", 1)[-1] if cmd else "?"


def _short(frame: str) -> str:
    """`func (pkg/module.py:123)` -> `func (pkg/module.py)` so lines of one function add up."""
    return re.sub(r":\d+\)$", ")", frame)


def below(stacks: list[tuple[list[str], int]], function: str) -> list[tuple[list[str], int]]:
    """Only the stacks through `function`, cut to the frames from it down (percentages become of all samples)."""
    cut = []
    for frames, count in stacks:
        for index, frame in enumerate(frames):
            if function in frame:
                cut.append((["process"] + frames[index:], count))
                break
        else:
            cut.append((["process", "(elsewhere)"], count))
    return cut


def summarize(stacks: list[tuple[list[str], int]], top: int, grep: str | None) -> str:
    total = sum(count for _, count in stacks)
    idle = 0
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    for frames, count in stacks:
        leaf = frames[-1] if frames else "?"
        if _IDLE.match(leaf):
            idle += count
            continue
        seen = set()
        for frame in frames[1:]:
            name = _short(frame)
            if name not in seen:
                seen.add(name)
                inclusive[name] += count
        self_time[_short(leaf)] += count
    busy = total - idle
    lines = [f"samples: {total}, idle: {idle}, busy: {busy} (percentages below are of busy samples)"]
    for title, table in (("inclusive", inclusive), ("self", self_time)):
        lines.append(f"\n-- {title} --")
        shown = 0
        for name, count in table.most_common():
            if grep and grep not in name:
                continue
            lines.append(f"{100 * count / max(busy, 1):6.1f}%  {name}")
            shown += 1
            if shown >= top:
                break
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--grep", help="only functions whose frame contains this text")
    parser.add_argument("--under", help="only what runs below the first frame containing this text")
    args = parser.parse_args(argv)
    for path in args.files:
        print(f"== {path}")
        stacks = parse(path)
        if args.under:
            stacks = below(stacks, args.under)
        print(summarize(stacks, args.top, args.grep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
