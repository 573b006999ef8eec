"""HTTP clients of the load driver: one keep-alive connection per lane, `request(method, path, body)`.

`httpx` is the default (httpx.AsyncClient). `raw` is a minimal HTTP/1.1 client on asyncio streams for
127.0.0.1 benchmarks only: it costs the driver ~5x less CPU per request, which matters on a 2-core box where
the driver shares the cores with the system under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import sys
import types
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

try:
    import sniffio  # noqa: F401
except ImportError:
    # httpcore imports sniffio on every lock setup (several per request); without it each failed import
    # walks sys.path (~160 us). A stub answering "asyncio" is what httpcore falls back to anyway.
    _sniffio = types.ModuleType("sniffio")
    _sniffio.current_async_library = lambda: "asyncio"  # type: ignore[attr-defined]
    sys.modules["sniffio"] = _sniffio

# Errors a lane counts (by class name) instead of stopping.
CLIENT_ERRORS: tuple[type[BaseException], ...] = (httpx.HTTPError, OSError, asyncio.IncompleteReadError, ValueError)


class LaneClient(Protocol):
    """One connection's worth of HTTP: JSON in, (status, parsed JSON) out."""

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Send one request and return its status and parsed JSON body (None when empty)."""

    async def close(self) -> None:
        """Close the connection."""


class HttpxLane:
    """httpx.AsyncClient limited to one connection.

    One client per lane rather than one shared pool: httpcore's pool scans every connection for every request,
    which made a shared 64-connection pool cost several ms of driver CPU per job.
    """

    _ONE = httpx.Limits(max_connections=1, max_keepalive_connections=1)

    def __init__(self, base: str, headers: dict[str, str], tls: ssl.SSLContext) -> None:
        # A shared SSL context: plain HTTP here, but each new client would otherwise load the CA bundle (~20 ms).
        self.client = httpx.AsyncClient(base_url=base, headers=headers, timeout=10.0, limits=self._ONE, verify=tls)

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        answer = await self.client.request(method, path, json=body)
        return answer.status_code, (answer.json() if answer.content else None)

    async def close(self) -> None:
        await self.client.aclose()


class RawLane:
    """HTTP/1.1 with keep-alive over one asyncio stream; reconnects when the server closes (HTTP/1.0 servers)."""

    def __init__(self, base: str, headers: dict[str, str]) -> None:
        parts = urlsplit(base)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"the raw client speaks plain http only, got {base}")
        self.host, self.port = parts.hostname, parts.port or 80
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self._head = f"Host: {self.host}:{self.port}\r\n{extra}"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._reader, self._writer
        assert reader is not None
        payload = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\n{self._head}"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        writer.write(head.encode() + b"\r\n" + payload)
        status_line = await reader.readline()
        if not status_line:
            await self.close()
            raise ConnectionResetError("server closed the connection")
        status = int(status_line.split(None, 2)[1])
        length, chunked, close = None, False, status_line.startswith(b"HTTP/1.0")
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = value.strip().lower() == b"close"
        if chunked:
            data = await self._read_chunked(reader)
        elif length is not None:
            data = await reader.readexactly(length)
        else:
            data, close = await reader.read(), True
        if close:
            await self.close()
        return status, (json.loads(data) if data else None)

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        parts = []
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                await reader.readline()
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readline()

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def make_lanes(kind: str, base: str, headers: dict[str, str], count: int) -> list[LaneClient]:
    """`count` lane clients of `kind` ("httpx" or "raw")."""
    if kind == "httpx":
        tls = ssl.create_default_context()
        return [HttpxLane(base, headers, tls) for _ in range(count)]
    if kind == "raw":
        return [RawLane(base, headers) for _ in range(count)]
    raise ValueError(f"unknown client {kind!r}: httpx or raw")
