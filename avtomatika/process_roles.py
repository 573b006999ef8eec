"""`engine.run()` / `await engine.start()` with Redis: the production roles as child processes of this one.

With Redis configured, one process holding the HTTP API, a Celery worker and the sweep shares one GIL and
one core; the production topology (a gunicorn gevent API, a Celery worker process) uses every core. So when the
engine can be loaded by other processes (`AVTOMATIKA_APP`, or the module that built it is importable, the
script being run included) and gunicorn + gevent are installed (the `server` extra), `ProcessRoles` starts:

- the API: `gunicorn -k gevent -w <cores> webapi.wsgi:app` on `API_HOST:API_PORT`;
- the steps: one `celery -A celery_app worker` process (threads pool, `EMBEDDED_WORKER_CONCURRENCY` threads)
  consuming the step queue and every native task type's queue;
- the sweep stays a thread of this process (the runner's), as without Redis.

The children inherit this process's environment and output, and load the same module under
`AVTOMATIKA_APP=<module>:<attr>` (a script's `if __name__ == "__main__":` block does not run there). They are
stopped with this process's `stop()`, and on Linux also when this process ends any other way.
`AVTOMATIKA_EMBEDDED_PROCESSES=false` keeps every role in this process.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

logger = logging.getLogger(__name__)

CHILD_MARK = "AVTOMATIKA_ROLE_CHILD"  # set in the children (to the parent's pid): they start no children
START_TIMEOUT = 60.0
# Each child is started through this launcher: on Linux it asks for SIGTERM when this process goes away (however
# it ends: a killed parent must not leave an API and a worker behind), then becomes the role's program.
_LAUNCH = """import ctypes, os, signal, sys
try:
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
except (AttributeError, OSError):
    pass
if os.getppid() != int(os.environ["AVTOMATIKA_ROLE_CHILD"]):
    sys.exit(1)  # the parent is already gone
os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
"""


def app_reference(engine: Any) -> tuple[str, str] | None:
    """(`module:attr`, a `PYTHONPATH` entry or "") under which other processes can load `engine`, or None.

    `AVTOMATIKA_APP` when set; else the script being run (`__main__`) when it holds the engine; else the module
    imported last of those holding it (blueprints are often registered in a module that imports the engine).
    """
    if os.environ.get("AVTOMATIKA_APP"):
        return os.environ["AVTOMATIKA_APP"], ""
    holders = [
        (name, attrs[0])
        for name, module in list(sys.modules.items())
        if module is not None and (attrs := [a for a, value in list(vars(module).items()) if value is engine])
    ]
    main = sys.modules.get("__main__")
    for name, attr in holders:
        if name == "__main__" and main is not None:
            spec = getattr(main, "__spec__", None)
            if spec is not None and spec.name and spec.name != "__main__":
                return f"{spec.name}:{attr}", ""  # `python -m package.module`
            path = Path(getattr(main, "__file__", "") or "")
            if path.suffix == ".py" and path.stem.isidentifier():
                return f"{path.stem}:{attr}", str(path.resolve().parent)
    for name, attr in reversed(holders):
        if name != "__main__" and all(part.isidentifier() for part in name.split(".")):
            return f"{name}:{attr}", ""
    return None


def wanted(engine: Any) -> tuple[str, str] | None:
    """The app reference when the roles should be child processes (Redis mode, loadable, gunicorn and gevent
    installed, not already a child, not switched off); None to run every role in this process."""
    if not engine.redis_url or os.environ.get(CHILD_MARK):
        return None
    if os.environ.get("AVTOMATIKA_EMBEDDED_PROCESSES", "").strip().lower() in ("0", "false", "no", "off"):
        return None
    if importlib.util.find_spec("gunicorn") is None or importlib.util.find_spec("gevent") is None:
        return None
    return app_reference(engine)


class ProcessRoles:
    """The API and step-worker child processes of one engine; `port` is the API's once started."""

    def __init__(self, engine: Any, app: tuple[str, str]) -> None:
        self.engine = engine
        self.app, self.path = app
        self.port = 0
        self._children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self) -> None:
        """Start the children; returns once the API answers. Raises RuntimeError (children stopped) if not."""
        config = self.engine.config
        self.port = int(config.API_PORT) or _free_port(config.API_HOST)
        env = dict(os.environ, AVTOMATIKA_APP=self.app, **{CHILD_MARK: str(os.getpid())})
        if self.path:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (self.path, env.get("PYTHONPATH", "")) if p)
        cores = max(1, os.cpu_count() or 1)
        queues = [self.engine.step_queue(), *(self.engine.native_queue(t) for t in self.engine.native_tasks)]
        api = [sys.executable, "-c", _LAUNCH, "-m", "gunicorn", "-k", "gevent", "-w", str(cores), "-b",
               f"{config.API_HOST}:{self.port}", "--graceful-timeout", "2", "webapi.wsgi:app"]  # fmt: skip
        worker = [sys.executable, "-c", _LAUNCH, "-m", "celery", "-A", "celery_app", "worker", "-P", "threads", "-c",
                  str(config.EMBEDDED_WORKER_CONCURRENCY), "-Q", ",".join(queues), "--without-mingle",
                  "--without-gossip", "-l", "WARNING", "-n", f"embedded-{os.getpid()}@%h"]  # fmt: skip
        try:
            for role, args in (("step worker", worker), ("API", api)):
                self._children.append((role, subprocess.Popen(args, env=env, start_new_session=True)))
            self._wait_until_up(config.API_HOST)
        except Exception:
            self.stop()
            raise

    def _wait_until_up(self, host: str) -> None:
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.port}/_public/status"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            for role, child in self._children:
                if child.poll() is not None:
                    raise RuntimeError(f"the {role} process exited with {child.returncode}")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the API did not answer at {url} within {START_TIMEOUT:g} s")

    def stop(self) -> None:
        """Stop the children (SIGTERM, then SIGKILL after 10 s); safe to call twice."""
        children, self._children = self._children, []
        for _, child in children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        for _, child in children:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait(10)


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host or "127.0.0.1", 0))
        return int(sock.getsockname()[1])
