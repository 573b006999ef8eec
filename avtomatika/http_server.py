"""The HTTP server of `engine.run()` / `await engine.start()`: cheroot (CherryPy's WSGI server) in threads.

Werkzeug's development server closes the connection after every response, so each request paid for a new TCP
connection and a new thread: half the CPU of an embedded job. cheroot keeps connections alive (here without
its default limit of 10 idle ones), parks idle ones in a selector and serves requests on a pool of threads.
Additions:

- its pool does not grow by itself; here it grows by one thread whenever a request arrives and no thread is idle,
  because a held long-poll (`tasks/next`, a job GET with `?wait=`) or an open WebSocket keeps its thread, and a
  fixed pool would make the next request wait behind them;
- WebSocket upgrades (flask-sock, `/_worker/ws/<id>`) get the connection's socket as werkzeug's server hands it
  over (`werkzeug.socket`), without cheroot's read timeout; the connection is closed when the WebSocket ends;
- the `Date` header is formatted once a second instead of for every response.
"""

from __future__ import annotations

import email.utils
import os
import socket
import time
from typing import Any

from cheroot import wsgi
from cheroot.workers.threadpool import ThreadPool

MIN_THREADS = 16
BACKLOG = 1024  # listen backlog: a burst of new connections must not wait for SYN retries (1 s, 3 s)


_date: tuple[int, str] = (0, "")


def _http_date() -> str:
    """The current time as an HTTP `Date` value, formatted once per second."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, email.utils.formatdate(now, usegmt=True))
    return _date[1]


class _GrowingPool(ThreadPool):
    """cheroot's pool, plus a thread whenever none is idle (it shrinks back only when the server stops)."""

    def put(self, obj: Any) -> None:
        if self.idle == 0:
            self.grow(1)
        super().put(obj)


class _HandedOverSocket(socket.socket):
    """A handle of a connection's socket that notes whether the app wrote to it (a WebSocket handshake did)."""

    used = False

    def send(self, data: Any, flags: int = 0) -> int:
        self.used = True
        return super().send(data, flags)

    def sendall(self, data: Any, flags: int = 0) -> None:
        self.used = True
        super().sendall(data, flags)


class _Gateway(wsgi.Gateway_10):
    """WSGI 1.0, plus WebSocket upgrades: the app gets its own handle of the connection's socket (what
    simple-websocket looks for under werkzeug); once it spoke on it, nothing else is written and the
    connection closes. An upgrade the app refuses (401, 404) is answered as any request."""

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        # cheroot formats a `Date` header for every response (`email.utils.formatdate`, 5 % of an embedded
        # job's CPU); one formatted per second is the same header.
        if not any(name.lower() == "date" for name, _ in headers):
            headers = [*headers, ("Date", _http_date())]
        return super().start_response(status, headers, exc_info)

    def respond(self) -> None:
        if self.env.get("HTTP_UPGRADE", "").lower() != "websocket":
            super().respond()
            return
        self.req.close_connection = True
        sock = self.req.conn.socket
        with _HandedOverSocket(sock.family, sock.type, sock.proto, fileno=os.dup(sock.fileno())) as own:
            own.settimeout(None)
            self.env["werkzeug.socket"] = own
            response = self.req.server.wsgi_app(self.env, self.start_response)
            try:
                if own.used:
                    for _ in response:  # flask-sock's answer after the WebSocket ended: not for the wire
                        pass
                    self.req.sent_headers = True
                    return
                for chunk in filter(None, response):
                    self.write(chunk)
                self.req.ensure_headers_sent()
            finally:
                if hasattr(response, "close"):
                    response.close()


class HttpServer:
    """A WSGI app served on (host, port); port 0 picks a free one (`port` is the bound one)."""

    def __init__(self, host: str, port: int, app: Any) -> None:
        server = wsgi.Server(
            (host, port), app, numthreads=MIN_THREADS, server_name="avtomatika", request_queue_size=BACKLOG
        )
        server.gateway = _Gateway
        # cheroot keeps at most 10 idle keep-alive connections by default and closes the others after their
        # response: with more clients than that, most requests paid for a new connection again.
        server.keep_alive_conn_limit = None  # type: ignore[assignment]  # None: no limit (cheroot docs)
        server.requests = _GrowingPool(server, min=MIN_THREADS, max=-1)
        server.prepare()  # binds the socket
        self._server = server
        self.port: int = int(server.bind_addr[1])

    def serve(self) -> None:
        """Serve until `stop()` (blocks)."""
        self._server.serve()

    def stop(self) -> None:
        """Stop listening, close the connections and join the threads."""
        self._server.stop()
