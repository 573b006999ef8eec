"""WSGI entry point for gunicorn: `AVTOMATIKA_APP=my_app:engine gunicorn webapi.wsgi:app`."""

from __future__ import annotations

from avtomatika.loader import check_storage, load_engine
from avtomatika.security import check_production_tokens

from . import gevent_redis

gevent_redis.install()  # under gunicorn's gevent worker only (it patched `select` before loading this app)

_engine = load_engine()
check_storage(_engine)  # an unreachable Redis fails the boot with one clear line, not redis-py's internals
check_production_tokens(_engine.config)
app = _engine.wsgi_app()
