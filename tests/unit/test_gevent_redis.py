"""`webapi.gevent_redis`: under gevent, redis-py's zero-timeout readiness check uses the real `poll` and still
tells a socket with pending data from an idle one; other timeouts stay cooperative; without gevent's patches
nothing changes. Each case runs in a fresh interpreter (monkey-patching is process-wide)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHECK = """
import socket
from redis._parsers import hiredis
from webapi import gevent_redis
before = hiredis._socket_can_read
installed = gevent_redis.install()
a, b = socket.socketpair()
idle = hiredis._socket_can_read(a, 0)
b.sendall(b"+OK\\r\\n")
ready = hiredis._socket_can_read(a, 0)
waited = hiredis._socket_can_read(a, 0.5)  # a non-zero timeout goes through the original (cooperative) check
print(installed, hiredis._socket_can_read is not before, idle, ready, waited, gevent_redis.install())
"""


def run(prelude: str) -> str:
    code = textwrap.dedent(prelude) + CHECK
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_under_gevent_the_zero_timeout_check_uses_the_real_poll_and_stays_correct() -> None:
    assert run("from gevent import monkey; monkey.patch_all()\n") == "True True False True True False"


def test_without_gevent_patches_nothing_is_replaced() -> None:
    assert run("") == "False False False True True False"
