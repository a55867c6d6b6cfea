"""A small HTTP/1.1 keep-alive client for the simulator's load.

httpx spends several CPU milliseconds per request; on a 2-core machine the load generator would
eat the cores it measures. This writes each request as bytes on a pooled connection and reads the
status line, the headers and a ``content-length`` body (what uvicorn sends): tens of microseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson


class HttpError(RuntimeError):
    pass


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, close = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
            elif name == b"transfer-encoding":
                raise HttpError("chunked responses are not read by this client")
        body = await self.reader.readexactly(length) if length else b""
        return status, body, close

    def close(self) -> None:
        self.writer.close()


class Client:
    """Up to ``connections`` keep-alive connections to one server; each request with its bearer token."""

    def __init__(self, url: str, connections: int = 8) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._idle: list[_Conn] = []
        self._slots = asyncio.Semaphore(connections)
        self.requests = 0

    async def _conn(self, fresh: bool = False) -> _Conn:
        if self._idle and not fresh:
            return self._idle.pop()
        reader, writer = await asyncio.open_connection(self.host, self.port, limit=16 * 1024 * 1024)
        return _Conn(reader, writer)

    async def call(self, method: str, path: str, token: str, body: Any = None,
                   key: str | None = None) -> tuple[int, Any]:
        payload = b"" if body is None else orjson.dumps(body)
        head = [f"{method} {path} HTTP/1.1", f"host: {self.host}:{self.port}",
                f"authorization: Bearer {token}", f"content-length: {len(payload)}"]
        if body is not None:
            head.append("content-type: application/json")
        if key is not None:
            head.append(f"idempotency-key: {key}")
        request = ("\r\n".join(head) + "\r\n\r\n").encode() + payload
        async with self._slots:
            for attempt in (1, 2):  # a keep-alive connection the server closed meanwhile: once more on a new one
                conn = await self._conn(fresh=attempt == 2)
                try:
                    status, raw, close = await conn.exchange(request)
                except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
                    conn.close()
                    if attempt == 2:
                        raise HttpError(f"{method} {path}: {exc!r}") from exc
                    continue
                if close:
                    conn.close()
                else:
                    self._idle.append(conn)
                self.requests += 1
                return status, orjson.loads(raw) if raw else None
        raise AssertionError("unreachable")

    async def post(self, path: str, body: Any, key: str, token: str) -> tuple[int, Any]:
        return await self.call("POST", path, token, body, key)

    async def get(self, path: str, token: str, **params: Any) -> tuple[int, Any]:
        query = f"?{urlencode(params)}" if params else ""
        return await self.call("GET", path + query, token)

    async def close(self) -> None:
        for conn in self._idle:
            conn.close()
            with contextlib.suppress(Exception):
                await conn.writer.wait_closed()
        self._idle.clear()
