"""Loading the part of the supermarket a command touches, under row locks, for ``decide``.

Lock order, always: the redemption row (returns), the shopper's balance row, then stock rows in
item id order. Two counters serving one shopper or one item therefore queue, never overdraw.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson

from services.exchange.domain.model import Item, Redemption, Shelf, Shopper
from shared.events.exchange import Limits, RedeemedLine

_SPENDABLE = "b.awarded + b.corrected - b.redeemed + b.returned"


async def shoppers_for_update(conn: asyncpg.Connection, codes: Sequence[str], item_ids: Sequence[str]
                              ) -> dict[str, Shopper]:
    """By member code: balance rows locked in subject order, then read with usage and pending after the
    locks (``exchange_shoppers``)."""
    rows = await conn.fetch("select * from exchange_shoppers($1, $2)", sorted(set(codes)), sorted(set(item_ids)))
    return {row["member_code"]: Shopper(row["subject_id"], row["community_id"], row["name"], row["member_code"],
                                        tuple(row["categories"]), int(row["spendable"]), int(row["pending"]),
                                        {(i, k): u for i, k, u in _json(row["used"])}) for row in rows}


async def shelves_for_update(conn: asyncpg.Connection, item_ids: Sequence[str]) -> dict[str, Shelf]:
    """Stock rows locked in item id order, then the items' terms in a fresh snapshot (a price change
    that held the lock has committed by then)."""
    ids = sorted(set(item_ids))
    stock = await conn.fetch("""select item_id, received - redeemed + returned as in_stock from stock
                                where item_id = any($1) order by item_id for update""", ids)
    items = await items_by_id(conn, [r["item_id"] for r in stock])
    return {r["item_id"]: Shelf(items[r["item_id"]], r["in_stock"]) for r in stock if r["item_id"] in items}


async def items_by_id(conn: asyncpg.Connection, ids: Sequence[str]) -> dict[str, Item]:
    """Items with their whole price and limit schedules, one statement."""
    rows = await conn.fetch(
        """select c.*,
                  (select jsonb_agg(jsonb_build_array(p.effective_from, p.price) order by p.effective_from)
                     from item_prices p where p.item_id = c.item_id) as prices,
                  (select jsonb_agg(jsonb_build_array(l.effective_from, l.limits) order by l.effective_from)
                     from item_limits l where l.item_id = c.item_id) as limits
           from catalogue_items c where c.item_id = any($1)""", list(ids))
    return {r["item_id"]: Item(
        r["item_id"], r["community_id"], r["name"], r["unit"],
        tuple((dt.datetime.fromisoformat(at), price) for at, price in _json(r["prices"] or "[]")),
        tuple((dt.datetime.fromisoformat(at), Limits.model_validate(lim)) for at, lim in _json(r["limits"] or "[]")))
        for r in rows}


async def item_for_update(conn: asyncpg.Connection, item_id: str) -> Item | None:
    """Price, limit and stock changes of an item queue behind its redemptions (the stock row lock)."""
    await conn.execute("select 1 from stock where item_id = $1 for update", item_id)
    return (await items_by_id(conn, [item_id])).get(item_id)


async def redemption_for_update(conn: asyncpg.Connection, redemption_id: str) -> Redemption | None:
    row = await conn.fetchrow("select * from redemptions where redemption_id = $1 for update", redemption_id)
    if row is None:
        return None
    lines = tuple(RedeemedLine.model_validate(line) for line in _json(row["lines"]))
    return Redemption(row["redemption_id"], row["community_id"], row["subject_id"], lines, row["total_points"],
                      returned=row["returned_at"] is not None)


def _json(value: object) -> list[Any]:
    return orjson.loads(value) if isinstance(value, str | bytes) else value  # type: ignore[return-value]
