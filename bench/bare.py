"""A bare ASGI app for benchmarks' controls: answers every GET with the bytes of the file named by
``BENCH_BARE_BODY`` (``uvicorn bench.bare:app``, the services' uvicorn options). What a server on
this machine does with no application at all: the floor under a service's latency."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

BODY = Path(os.environ.get("BENCH_BARE_BODY", "/dev/null")).read_bytes()
HEAD = [(b"content-length", str(len(BODY)).encode()), (b"content-type", b"application/json")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEAD})
    await send({"type": "http.response.body", "body": BODY})
