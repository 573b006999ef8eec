"""WSGI entry point for gunicorn: `AVTOMATIKA_APP=my_app:engine gunicorn webapi.wsgi:app`."""

from __future__ import annotations

from avtomatika.loader import load_engine
from avtomatika.security import check_production_tokens

_engine = load_engine()
check_production_tokens(_engine.config)
app = _engine.wsgi_app()
