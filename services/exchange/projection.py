"""The exchange read model, from the log: roster and pending items (declarations), certified awards
and corrections (review) and the supermarket's own events (exchange). Its tables are the very
state redemptions lock (services/exchange/tables.py), so a rebuild from offset 0 into a scratch
schema reproduces every balance and every stock."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from services.exchange import tables as exchange_tables
from shared.envelope import Envelope
from shared.projection import Projection
from shared.topics import DECLARATIONS, EXCHANGE, REVIEW


class ExchangeProjection(Projection):
    name = "exchange_state"
    topics = (DECLARATIONS, REVIEW, EXCHANGE)
    tables = exchange_tables.TABLES
    schema = exchange_tables.SCHEMA

    async def apply(self, conn: asyncpg.Connection, envelopes: Sequence[Envelope]) -> None:
        await exchange_tables.apply(conn, [env.event for env in envelopes])
