"""gunicorn settings for the Avtomatika API role.

    AVTOMATIKA_APP=my_app:engine gunicorn -c deploy/gunicorn.conf.py webapi.wsgi:app

- gevent worker class: one gevent worker holds thousands of concurrent long requests (FACTS: 3,000
  concurrent 10 s polls in ~160 MB), where gthread is capped at workers x threads.
- The app is loaded in each worker after gevent has patched the standard library (no `preload_app`):
  `webapi.wsgi` builds the engine, connects to Redis and refuses to start with default tokens when
  AVTOMATIKA_ENV=production; a refusal makes the worker fail to boot and gunicorn exit.
- PROMETHEUS_MULTIPROC_DIR: when set, the directory is created and emptied when the master starts and each
  dead worker's files are marked dead, so counters add up across workers (FACTS: prometheus-flask-exporter
  with a multiprocess collector). `/_public/metrics` then reports the HTTP metrics of every worker whichever
  worker answers; the orchestration metrics come from Redis and need no directory.
- LOG_LEVEL / LOG_FORMAT (text|json) configure the application's log output in each worker, as the
  `avtomatika` command does.
"""

import os
import shutil
import sys

bind = f"{os.environ.get('API_HOST', '0.0.0.0')}:{os.environ.get('API_PORT', '8080')}"
worker_class = "gevent"
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "2000"))
# For gevent workers `timeout` is the worker heartbeat, not a request limit; long requests are fine.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 75  # above nginx's default upstream keepalive_timeout (60 s)
# gunicorn answers a longer request line itself with an HTML 414; up to 8 KB the app answers a JSON 414 for
# any URL over 4 KB (webapi.errors.MAX_URL_BYTES).
limit_request_line = 8190
# Trust X-Forwarded-* only from the reverse proxy (set to its address; "*" inside a private network).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = "-"
# gunicorn >= 25 opens a control socket at one fixed path (~/.gunicorn/gunicorn.ctl) that every instance on the
# host shares; nothing here uses it, and two API instances would take it from each other.
control_socket_disable = True
loglevel = os.environ.get("LOG_LEVEL", "info").lower()

_multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def on_starting(server):
    """Master start: the settings and Redis checked once, before any worker boots (one line and exit 2, as the
    `avtomatika` command; each failing worker would otherwise print the same error and gunicorn its own
    traceback), and a clean multiprocess metrics directory (stale files would double-count)."""
    from avtomatika.config import Config
    from avtomatika.errors import ConfigError
    from avtomatika.storage.redis import unreachable

    try:
        url = Config().redis_url  # an app that sets Redis in code is checked by each worker (webapi.wsgi)
        problem = unreachable(url) if url else ""
    except ConfigError as exc:
        problem = str(exc)
    if problem:
        print(f"avtomatika: {problem}", file=sys.stderr, flush=True)
        raise SystemExit(2)
    if _multiproc_dir:
        shutil.rmtree(_multiproc_dir, ignore_errors=True)
        os.makedirs(_multiproc_dir, exist_ok=True)


def post_fork(server, worker):
    """Each worker logs like the `avtomatika` command (LOG_LEVEL, LOG_FORMAT) before the app loads."""
    from avtomatika.logs import configure_logging

    configure_logging(os.environ.get("LOG_LEVEL", "INFO"), os.environ.get("LOG_FORMAT", "text"))


def child_exit(server, worker):
    """Mark a dead worker's metric files so gauges from it stop counting."""
    if not _multiproc_dir:
        return
    try:
        from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics
    except ImportError:  # telemetry extra not installed
        return
    GunicornInternalPrometheusMetrics.mark_process_dead_on_child_exit(worker.pid)
