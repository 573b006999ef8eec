"""A small in-memory orchestrator speaking the worker protocol (SPEC §4) over real HTTP and WebSocket.

Built on `http.server` so the SDK tests need neither Flask nor the engine. It implements only what the SDK
talks to: register, heartbeat (with `cancel_tasks`), long-poll, results, and a minimal WebSocket (RFC 6455
handshake and unfragmented frames) for cancel pushes and progress events.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StubOrchestrator:
    """The orchestrator state the tests inspect and steer; thread-safe."""

    def __init__(self, token: str = "worker-token", poll_timeout: float = 0.2) -> None:
        self.token = token
        self.poll_timeout = poll_timeout
        self.lock = threading.Condition()
        self.workers: dict[str, dict[str, Any]] = {}
        self.registrations: list[dict[str, Any]] = []
        self.heartbeats: list[tuple[str, Any]] = []
        self.polls = 0
        self.queue: list[dict[str, Any]] = []
        self.leases: dict[str, str] = {}  # task_id -> worker_id
        self.results: list[dict[str, Any]] = []
        self.result_statuses: dict[str, list[int]] = {}  # task_id -> statuses to answer, in order
        self.cancel_tasks: dict[str, list[str]] = {}  # worker_id -> task ids for the next heartbeat answer
        self.progress: list[dict[str, Any]] = []
        self.sockets: dict[str, WebSocket] = {}
        self.requests: list[tuple[str, str]] = []
        self.url = ""
        self.server: QuietServer | None = None
        self.thread: threading.Thread | None = None

    # --- steering --------------------------------------------------------------------------------------------

    def add_task(self, task_type: str, params: dict[str, Any] | None = None, task_id: str = "t1", **extra: Any) -> None:
        """Queue a task for the next poll."""
        task = {
            "job_id": extra.pop("job_id", f"job-{task_id}"),
            "task_id": task_id,
            "type": task_type,
            "params": params or {},
            "priority": 0,
            "deadline": time.time() + 60,
            "attempt": 1,
            "tracing_context": {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"},
            **extra,
        }
        with self.lock:
            self.queue.append(task)
            self.lock.notify_all()

    def forget_workers(self) -> None:
        """Drop every worker record: the next heartbeat answers 404."""
        with self.lock:
            self.workers.clear()

    def push(self, worker_id: str, message: dict[str, Any]) -> None:
        """Send a JSON message over the worker's WebSocket."""
        self.sockets[worker_id].send_text(json.dumps(message))

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Block until `predicate()` holds (checked on every state change), or fail."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("condition not reached in time")
                self.lock.wait(min(remaining, 0.05))

    # --- server ----------------------------------------------------------------------------------------------

    def start(self, port: int = 0) -> str:
        """Serve on 127.0.0.1 (a free port by default); returns the base URL."""
        stub = self

        class Handler(StubHandler):
            orchestrator = stub

        server = QuietServer(("127.0.0.1", port), Handler)
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        """Stop serving and close open WebSockets."""
        for ws in list(self.sockets.values()):
            ws.close()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        with self.lock:
            self.lock.notify_all()

    # --- routes ----------------------------------------------------------------------------------------------

    def route(self, method: str, path: str, body: Any, token: str | None) -> tuple[int, Any, dict[str, str]]:
        """Answer one request: ``(status, json_body_or_None, headers)``."""
        with self.lock:
            self.requests.append((method, path))
            self.lock.notify_all()
        if token != self.token:
            return 401, {"error": "unauthorized", "details": None}, {}
        parts = path.strip("/").split("/")
        if method == "POST" and path == "/_worker/workers/register":
            with self.lock:
                self.registrations.append(body)
                self.workers[body["worker_id"]] = {**body, "status": "idle"}
                self.lock.notify_all()
            return 200, {"status": "registered"}, {}
        if method == "PATCH" and len(parts) == 3 and parts[:2] == ["_worker", "workers"]:
            return self.heartbeat(parts[2], body)
        if method == "GET" and len(parts) == 5 and parts[3:] == ["tasks", "next"]:
            return self.next_task(parts[2])
        if method == "POST" and path == "/_worker/tasks/result":
            return self.result(body)
        return 404, {"error": "not_found", "details": path}, {}

    def heartbeat(self, worker_id: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        with self.lock:
            self.heartbeats.append((worker_id, body))
            self.lock.notify_all()
            if worker_id not in self.workers:
                return 404, {"error": "worker_not_found", "details": worker_id}, {}
            answer: dict[str, Any]
            if body is None:
                answer = {"status": "ttl_refreshed"}
            else:
                self.workers[worker_id].update(body)
                answer = dict(self.workers[worker_id])
            cancel = self.cancel_tasks.pop(worker_id, [])
            if cancel:
                answer["cancel_tasks"] = cancel
            return 200, answer, {}

    def next_task(self, worker_id: str) -> tuple[int, Any, dict[str, str]]:
        deadline = time.monotonic() + self.poll_timeout
        with self.lock:
            self.polls += 1
            self.lock.notify_all()
            if worker_id not in self.workers:
                return 404, {"error": "worker_not_found", "details": worker_id}, {}
            supported = self.workers[worker_id]["supported_tasks"]
            while True:
                for index, task in enumerate(self.queue):
                    if task["type"] in supported:
                        del self.queue[index]
                        self.leases[task["task_id"]] = worker_id
                        self.lock.notify_all()
                        return 200, task, {}
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return 204, None, {}
                self.lock.wait(remaining)

    def result(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        with self.lock:
            self.results.append(body)
            self.lock.notify_all()
            forced = self.result_statuses.get(body["task_id"])
            if forced:
                status = forced.pop(0)
                if status == 429:
                    return 429, {"error": "rate_limited", "details": None}, {"Retry-After": "0"}
                return status, {"error": "forced", "details": status}, {}
            if self.leases.get(body["task_id"]) != body["worker_id"]:
                return 409, {"error": "stale_result", "details": body["task_id"]}, {}
            outcome = body["result"].get("status", "success")
            kind = outcome if outcome in ("failure", "cancelled") else "success"
            return 200, {"status": f"result_accepted_{kind}"}, {}


class QuietServer(ThreadingHTTPServer):
    """Daemon handler threads; a client that hung up mid-answer (a cancelled long-poll) is not an error."""

    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class WebSocket:
    """The server side of one WebSocket over the handler's streams (unfragmented frames only)."""

    def __init__(self, handler: BaseHTTPRequestHandler) -> None:
        self.rfile = handler.rfile
        self.wfile = handler.wfile
        self.write_lock = threading.Lock()
        self.closed = False

    def send_frame(self, opcode: int, payload: bytes) -> None:
        header = bytes([0x80 | opcode])
        if len(payload) < 126:
            header += bytes([len(payload)])
        elif len(payload) < 65536:
            header += bytes([126]) + struct.pack("!H", len(payload))
        else:
            header += bytes([127]) + struct.pack("!Q", len(payload))
        with self.write_lock:
            if self.closed:
                return
            self.wfile.write(header + payload)
            self.wfile.flush()

    def send_text(self, text: str) -> None:
        self.send_frame(0x1, text.encode())

    def read_frame(self) -> tuple[int, bytes]:
        head = self.rfile.read(2)
        if len(head) < 2:
            return 0x8, b""
        opcode, length = head[0] & 0x0F, head[1] & 0x7F
        if length == 126:
            length = struct.unpack("!H", self.rfile.read(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self.rfile.read(8))[0]
        mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
        data = self.rfile.read(length)
        return opcode, bytes(byte ^ mask[i % 4] for i, byte in enumerate(data))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.send_frame(0x8, struct.pack("!H", 1001))
        with self.write_lock:
            self.closed = True


class StubHandler(BaseHTTPRequestHandler):
    """Routes HTTP requests to the `StubOrchestrator`; upgrades `/_worker/ws/{id}`."""

    orchestrator: StubOrchestrator
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/_worker/ws/"):
            self.websocket(self.path.rsplit("/", 1)[1])
        else:
            self.dispatch("GET")

    def do_POST(self) -> None:
        self.dispatch("POST")

    def do_PATCH(self) -> None:
        self.dispatch("PATCH")

    def dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        status, answer, headers = self.orchestrator.route(method, self.path, body, self.headers.get("X-Worker-Token"))
        payload = b"" if answer is None else json.dumps(answer).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if payload:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def websocket(self, worker_id: str) -> None:
        stub = self.orchestrator
        if self.headers.get("X-Worker-Token") != stub.token:
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        key = self.headers["Sec-WebSocket-Key"]
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        ws = WebSocket(self)
        with stub.lock:
            stub.sockets[worker_id] = ws
            stub.lock.notify_all()
        try:
            while True:
                opcode, data = ws.read_frame()
                if opcode == 0x8:
                    ws.close()
                    break
                if opcode == 0x9:
                    ws.send_frame(0xA, data)
                elif opcode == 0x1:
                    with stub.lock:
                        stub.progress.append(json.loads(data))
                        stub.lock.notify_all()
        except OSError:
            pass
        finally:
            with stub.lock:
                if stub.sockets.get(worker_id) is ws:
                    del stub.sockets[worker_id]
                stub.lock.notify_all()
            self.close_connection = True
