"""The outbox relay: publishes the service's unpublished events to Kafka, in position order.

Positions follow commit order (appends are serialised per database until commit, see
``shared.store``), so a row that becomes visible never has a lower position than one already
seen: paging by position skips nothing, and a stream's versions reach the topic in order, each
log in its chain order. Rows are still marked ``published_at`` (readiness and restarts read it).
One relay per database holds an advisory lock. A crash between send and mark republishes a
batch; consumers dedup by event id (the verifier reports such a repeat as a duplicate, not a
break). While the broker is down the relay backs off and retries the same rows, in order.

Waiting: every append notifies ``events_appended`` (``shared.store``, at commit). While rows keep
coming the relay drains every ``relay_idle_sleep_s`` (a batch per round, not a round per commit);
once no append has notified since a round began it sleeps until the next notification, or
``relay_poll_s`` at most (rows written by a tool that does not notify). An idle service (a site at
night) then costs no query 50 times a second, and a row that arrives alone costs one fetch and one
mark, not a second fetch to find nothing after it and a third round to find nothing again.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from shared.envelope import headers, source_for
from shared.kafka import producer_config
from shared.logging import get_logger
from shared.settings import Settings

log = get_logger("relay")
RELAY_LOCK = 7_420_001
APPENDED = "events_appended"  # the channel ``events_log_head`` notifies at every append

FETCH = """select position, event_id, stream_id, version, type, topic, key, body, recorded_at, actor,
                  correlation_id, causation_id, prev_hash, hash, source, log_position
           from events where published_at is null and position > $2 order by position limit $1"""


def record_headers(row: asyncpg.Record, source: str) -> list[tuple[str, bytes]]:
    """The row's CloudEvents headers. A legacy row (before the log chain: no stored source, no
    chain position) goes out with the relay's source, no ``sequence`` and its per-stream hashes."""
    return headers(
        event_id=row["event_id"], source=row["source"] or source, type_name=row["type"],
        stream_id=row["stream_id"], version=row["version"], time=row["recorded_at"], actor=row["actor"],
        correlation_id=row["correlation_id"], causation_id=row["causation_id"],
        prev_hash=row["prev_hash"], digest=row["hash"], position=row["log_position"], key=row["key"],
    )


class Relay:
    def __init__(self, pool: asyncpg.Pool, settings: Settings, source: str) -> None:
        self.pool = pool
        self.settings = settings
        self.source = source
        self.producer: AIOKafkaProducer | None = None
        self.published = 0
        self.rounds = 0  # drain rounds run (each at least one query)
        self.appended = asyncio.Event()  # set by a notification: rows may be waiting

    async def _producer(self) -> AIOKafkaProducer:
        if self.producer is None:
            producer = AIOKafkaProducer(**producer_config(self.settings))
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self.producer = producer
        return self.producer

    async def close(self) -> None:
        if self.producer is not None:
            with contextlib.suppress(Exception):
                await self.producer.stop()
            self.producer = None

    async def fetch(self, conn: asyncpg.Connection, after: int = 0) -> list[asyncpg.Record]:
        return await conn.fetch(FETCH, self.settings.relay_batch_size, after)  # type: ignore[no-any-return]

    async def send(self, rows: list[asyncpg.Record]) -> None:
        """Send in position order and wait for every acknowledgement (acks=all)."""
        producer = await self._producer()
        futures = [
            await producer.send(
                row["topic"], value=bytes(row["body"]), key=row["key"].encode(),
                headers=record_headers(row, self.source),
            )
            for row in rows
        ]
        await asyncio.gather(*futures)

    async def mark(self, conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> None:
        await conn.execute("update events set published_at = now() where position = any($1::bigint[])",
                           [r["position"] for r in rows])
        self.published += len(rows)

    async def publish_batch(self, conn: asyncpg.Connection) -> int:
        """One fetch -> send -> mark round, without pipelining (tools and tests)."""
        rows = await self.fetch(conn)
        if rows:
            await self.send(rows)
            await self.mark(conn, rows)
        return len(rows)

    async def drain(self, conn: asyncpg.Connection, marker: asyncpg.Connection,
                    stop: asyncio.Event | None = None) -> int:
        """Publish what was there when it started. Pipelined: the next batch is fetched while this
        one's acknowledgements are awaited, and this one is marked while the next is sent. A batch
        is sent only after the previous one is acknowledged, so a failure never reorders. A batch
        short of ``relay_batch_size`` was all there was: no fetch after it (rows committed since
        have notified; ``run`` comes back for them)."""
        total = 0
        marking: asyncio.Task[None] | None = None
        try:
            rows = await self.fetch(conn)
            while rows and not (stop is not None and stop.is_set()):
                sending = asyncio.create_task(self.send(rows))
                fetching = (asyncio.create_task(self.fetch(conn, after=rows[-1]["position"]))
                            if len(rows) >= self.settings.relay_batch_size else None)
                try:
                    await sending
                finally:
                    following = await fetching if fetching is not None else []
                if marking is not None:
                    await marking
                marking = asyncio.create_task(self.mark(marker, rows))
                total += len(rows)
                rows = following
        finally:
            if marking is not None:
                await marking
        return total

    def _notified(self, *_: object) -> None:
        self.appended.set()

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.2
        async with self.pool.acquire() as conn, self.pool.acquire() as marker:
            while not await conn.fetchval("select pg_try_advisory_lock($1)", RELAY_LOCK):
                log.info("relay.waiting_for_lock")
                if await _wait(stop, 1.0):
                    return
            await conn.add_listener(APPENDED, self._notified)
            log.info("relay.started")
            try:
                while not stop.is_set():
                    self.appended.clear()  # before the fetch: a commit after it notifies again
                    try:
                        self.rounds += 1
                        await self.drain(conn, marker, stop)
                        backoff = 0.2
                    except (TimeoutError, KafkaError, OSError) as exc:
                        log.warning("relay.broker_unavailable", error=repr(exc), retry_in_s=backoff)
                        await self.close()
                        if await _wait(stop, backoff):
                            break
                        backoff = min(backoff * 2, 5.0)
                        continue
                    if await _wait(stop, self.settings.relay_idle_sleep_s):
                        break
                    if not self.appended.is_set():  # nothing committed since this round began
                        await _wait_either(stop, self.appended, self.settings.relay_poll_s)
            finally:
                await self.close()
                with contextlib.suppress(Exception):
                    await conn.remove_listener(APPENDED, self._notified)
                with contextlib.suppress(Exception):
                    await conn.execute("select pg_advisory_unlock($1)", RELAY_LOCK)


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep unless asked to stop; True when stopping."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


async def _wait_either(stop: asyncio.Event, event: asyncio.Event, seconds: float) -> None:
    """Sleep until ``stop`` or ``event`` is set, or ``seconds`` have passed."""
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(event.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def main(service: str) -> None:
    import signal
    from functools import partial

    from shared.background import supervise
    from shared.logging import configure_logging
    from shared.settings import get_settings

    settings = get_settings()
    configure_logging(f"{service}-relay")
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    relay = Relay(pool, settings, source=source_for(service, settings))
    try:  # kept alive like a service's own relay: PostgreSQL restarting under it is not the end
        await supervise("relay", partial(relay.run, stop), stop)
    finally:
        await pool.close()


if __name__ == "__main__":
    import sys

    import uvloop

    uvloop.run(main(sys.argv[1] if len(sys.argv) > 1 else "declarations"))  # the loop the services run on
