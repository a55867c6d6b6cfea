"""The exchange read model, from the log: roster and pending items (declarations), certified awards
and corrections (review) and the supermarket's own events (exchange). Its tables are the very
state redemptions lock (services/exchange/tables.py), so a rebuild from offset 0 into a scratch
schema reproduces every balance and every stock."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from services.exchange import tables as exchange_tables
from shared.envelope import Envelope
from shared.events.exchange import Redeemed
from shared.projection import Projection
from shared.topics import DECLARATIONS, EXCHANGE, REVIEW


class ExchangeProjection(Projection):
    name = "exchange_state"
    topics = (DECLARATIONS, REVIEW, EXCHANGE)
    reads = exchange_tables.READS
    tables = exchange_tables.TABLES
    schema = exchange_tables.SCHEMA

    async def apply(self, conn: asyncpg.Connection, envelopes: Sequence[Envelope]) -> None:
        events = [env.event for env in envelopes]
        # The counter applied its own redemptions when it made them: skip those in one look-up
        # (applying them again would change nothing, one statement each).
        ids = [ev.redemption_id for ev in events if isinstance(ev, Redeemed)]
        if ids:
            known = {r["redemption_id"] for r in await conn.fetch(
                "select redemption_id from redemptions where redemption_id = any($1)", ids)}
            events = [ev for ev in events if not (isinstance(ev, Redeemed) and ev.redemption_id in known)]
        await exchange_tables.apply(conn, events)
