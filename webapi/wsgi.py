"""WSGI entry point for gunicorn: `AVTOMATIKA_APP=my_app:engine gunicorn webapi.wsgi:app`.

A configuration problem (an unreachable Redis, a default token in production, an invalid setting) is printed as
one line and the worker exits with gunicorn's "worker failed to boot" code (3), so gunicorn stops with its own
short reason instead of a traceback through its loader.
"""

from __future__ import annotations

import sys

from avtomatika.errors import ConfigError
from avtomatika.loader import check_storage, load_engine
from avtomatika.security import check_production_tokens

from . import gevent_redis

WORKER_BOOT_ERROR = 3  # gunicorn.arbiter.Arbiter.WORKER_BOOT_ERROR: the master halts and names the reason

gevent_redis.install()  # under gunicorn's gevent worker only (it patched `select` before loading this app)

try:
    _engine = load_engine()
    check_storage(_engine)  # an unreachable Redis fails the boot with one clear line, not redis-py's internals
    check_production_tokens(_engine.config)
except ConfigError as exc:
    print(f"avtomatika: {exc}", file=sys.stderr, flush=True)
    raise SystemExit(WORKER_BOOT_ERROR) from None
app = _engine.wsgi_app()
