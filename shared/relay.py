"""The outbox relay: publishes the service's unpublished events to Kafka, in position order.

Rows are selected by ``published_at is null`` (not by a position cursor: a transaction that
commits late can make a lower position visible after a higher one). One relay per database
holds an advisory lock. A crash between send and mark republishes a batch; consumers dedup by
event id. While the broker is down the relay backs off and retries the same rows, in order.
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

FETCH = """select position, event_id, stream_id, version, type, topic, key, body, recorded_at, actor,
                  correlation_id, causation_id, prev_hash, hash
           from events where published_at is null order by position limit $1"""


def record_headers(row: asyncpg.Record, source: str) -> list[tuple[str, bytes]]:
    return headers(
        event_id=row["event_id"], source=source, type_name=row["type"], stream_id=row["stream_id"],
        version=row["version"], time=row["recorded_at"], actor=row["actor"],
        correlation_id=row["correlation_id"], causation_id=row["causation_id"],
        prev_hash=row["prev_hash"], digest=row["hash"],
    )


class Relay:
    def __init__(self, pool: asyncpg.Pool, settings: Settings, source: str) -> None:
        self.pool = pool
        self.settings = settings
        self.source = source
        self.producer: AIOKafkaProducer | None = None
        self.published = 0

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

    async def _drop_producer(self) -> None:
        if self.producer is not None:
            with contextlib.suppress(Exception):
                await self.producer.stop()
            self.producer = None

    async def publish_batch(self, conn: asyncpg.Connection) -> int:
        rows = await conn.fetch(FETCH, self.settings.relay_batch_size)
        if not rows:
            return 0
        producer = await self._producer()
        futures = [
            await producer.send(
                row["topic"], value=bytes(row["body"]), key=row["key"].encode(),
                headers=record_headers(row, self.source),
            )
            for row in rows
        ]
        await asyncio.gather(*futures)
        await conn.execute(
            "update events set published_at = now() where position = any($1::bigint[])",
            [r["position"] for r in rows],
        )
        self.published += len(rows)
        return len(rows)

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.2
        async with self.pool.acquire() as conn:
            while not await conn.fetchval("select pg_try_advisory_lock($1)", RELAY_LOCK):
                log.info("relay.waiting_for_lock")
                if await _wait(stop, 1.0):
                    return
            log.info("relay.started")
            try:
                while not stop.is_set():
                    try:
                        n = await self.publish_batch(conn)
                        backoff = 0.2
                    except (TimeoutError, KafkaError, OSError) as exc:
                        log.warning("relay.broker_unavailable", error=repr(exc), retry_in_s=backoff)
                        await self._drop_producer()
                        if await _wait(stop, backoff):
                            break
                        backoff = min(backoff * 2, 5.0)
                        continue
                    if n < self.settings.relay_batch_size and await _wait(stop, self.settings.relay_idle_sleep_s):
                        break
            finally:
                await self._drop_producer()
                with contextlib.suppress(Exception):
                    await conn.execute("select pg_advisory_unlock($1)", RELAY_LOCK)


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep unless asked to stop; True when stopping."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


async def main(service: str) -> None:
    import signal

    from shared.logging import configure_logging
    from shared.settings import get_settings

    settings = get_settings()
    configure_logging(f"{service}-relay")
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await Relay(pool, settings, source=source_for(service)).run(stop)
    finally:
        await pool.close()


if __name__ == "__main__":
    import sys

    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "declarations"))
