"""The embedded runner's HTTP server (`avtomatika.http_server`, cheroot): keep-alive, a growing pool, Date."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from avtomatika.http_server import MIN_THREADS, HttpServer

release = threading.Event()


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    if environ["PATH_INFO"] == "/hold":
        release.wait(10)  # a long-poll: holds its thread
    body = b'{"ok": true}'
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture
def server() -> Iterator[HttpServer]:
    release.clear()
    srv = HttpServer("127.0.0.1", 0, app)
    thread = threading.Thread(target=srv.serve, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        release.set()
        srv.stop()
        thread.join(10)


def test_many_idle_keep_alive_connections_stay_open(server: HttpServer):
    connections = [http.client.HTTPConnection("127.0.0.1", server.port, timeout=10) for _ in range(30)]
    try:
        for _ in range(2):
            for conn in connections:  # all 30 are idle between their two requests (cheroot's default keeps 10)
                conn.request("GET", "/")
                answer = conn.getresponse()
                assert answer.status == 200 and answer.read() == b'{"ok": true}'
                assert (answer.getheader("Connection") or "").lower() != "close"
                assert answer.getheader("Date", "").endswith(" GMT")
        assert all(conn.sock is not None for conn in connections)  # never reconnected
    finally:
        for conn in connections:
            conn.close()


def test_the_pool_grows_past_held_requests(server: HttpServer):
    held = [http.client.HTTPConnection("127.0.0.1", server.port, timeout=20) for _ in range(MIN_THREADS + 4)]
    try:
        for conn in held:
            conn.request("GET", "/hold")
        quick = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        quick.request("GET", "/")
        assert quick.getresponse().status == 200  # answered while every pool thread of the start is held
        quick.close()
        release.set()
        assert all(conn.getresponse().status == 200 for conn in held)
    finally:
        release.set()
        for conn in held:
            conn.close()
