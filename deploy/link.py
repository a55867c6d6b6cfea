"""A network link that can be cut: TCP forwarders on 127.0.0.1 (one per route, ``listen port -> target
port``) on an event loop of their own, in a thread of the process that owns them.

``cut()`` drops every open connection at once and, until ``restore()``, resets each new one as soon
as it is accepted (the ports stay ours, so nobody else can take them meanwhile): to a client it is a
link that went down. The fault suite routes a community site's Kafka traffic through one (the
brokers' ``SITE`` listeners, advertised at the forwarders' ports; ``deploy.local.KafkaServer``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
HOST = "127.0.0.1"
CHUNK = 64 * 1024


class Link:
    def __init__(self, routes: Sequence[tuple[int, int]], host: str = HOST) -> None:
        self.routes = list(routes)  # (listen port, target port)
        self.host = host
        self.up = True
        self.cuts = 0
        self.refused = 0  # connections reset on arrival while cut
        self._open: set[asyncio.StreamWriter] = set()
        self._servers: list[asyncio.Server] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # --- the owner's side (any thread)
    def start(self) -> Link:
        if self._loop is not None:
            return self
        loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="link", daemon=True)
        self._thread.start()
        self._loop = loop
        self._call(self._listen())
        return self

    def cut(self) -> None:
        self._call(self._cut())

    def restore(self) -> None:
        self._call(self._restore())

    @property
    def connections(self) -> int:
        """Connections open now (each forwarded one counts its two ends)."""
        return len(self._open)

    def close(self) -> None:
        if self._loop is None:
            return
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(10)
        self._loop.close()
        self._loop = None

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None, "the link is not started"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    # --- on the link's loop
    async def _listen(self) -> None:
        for listen, target in self.routes:
            self._servers.append(await asyncio.start_server(
                functools.partial(self._forward, target=target), self.host, listen, reuse_address=True))

    async def _cut(self) -> None:
        self.up = False
        self.cuts += 1
        for writer in list(self._open):
            writer.transport.abort()  # no goodbye: the bytes in flight are lost, as on a cut cable
        self._open.clear()

    async def _restore(self) -> None:
        self.up = True

    async def _close(self) -> None:
        await self._cut()
        for server in self._servers:
            server.close()
            await server.wait_closed()
        self._servers.clear()
        forwarding = asyncio.all_tasks() - {asyncio.current_task()}  # the loop is the link's own
        if forwarding:  # the cut ended their pumps: let them finish before the loop stops
            await asyncio.wait(forwarding, timeout=5)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: int) -> None:
        if not self.up:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, target)
        except OSError:  # the broker behind is down: so is this connection
            writer.transport.abort()
            return
        if not self.up:  # cut while connecting
            for w in (writer, up_writer):
                w.transport.abort()
            return
        self._open |= {writer, up_writer}
        try:
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self._open.discard(w)
                w.transport.abort()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Bytes one way until either end goes; then the other way ends too (its writer is closed)."""
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()
