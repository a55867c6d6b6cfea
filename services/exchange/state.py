"""Loading the part of the supermarket a command touches, under row locks, for ``decide``.

Lock order, always: the redemption row (returns), the shopper's balance row, then stock rows in
item id order. Two counters serving one shopper or one item therefore queue, never overdraw.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

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
    return {row["member_code"]: shopper(row) for row in rows}


async def shelves_for_update(conn: asyncpg.Connection, item_ids: Sequence[str]) -> dict[str, Shelf]:
    """Stock rows locked in item id order, then the items' terms in a fresh snapshot (``exchange_shelves``)."""
    rows = await conn.fetch("select * from exchange_shelves($1)", sorted(set(item_ids)))
    return {row["item_id"]: shelf(row) for row in rows}


async def items_by_id(conn: asyncpg.Connection, ids: Sequence[str]) -> dict[str, Item]:
    """Items with their whole price and limit schedules, one statement."""
    return {r["item_id"]: item(r) for r in await conn.fetch("select * from exchange_items($1)", list(ids))}


Row: TypeAlias = asyncpg.Record | Mapping[str, Any]  # a row as fetched, or as ``to_jsonb`` made it


def shopper(row: Row) -> Shopper:
    """A row of ``exchange_shoppers``."""
    return Shopper(row["subject_id"], row["community_id"], row["name"], row["member_code"],
                   tuple(row["categories"]), int(row["spendable"]), int(row["pending"]),
                   {(i, k): u for i, k, u in _json(row["used"])})


def shelf(row: Row) -> Shelf:
    """A row of ``exchange_shelves``."""
    return Shelf(item(row), row["in_stock"])


def item(row: Row) -> Item:
    """A row of ``exchange_items``."""
    return Item(
        row["item_id"], row["community_id"], row["name"], row["unit"],
        tuple((dt.datetime.fromisoformat(at), price) for at, price in _json(row["prices"] or "[]")),
        tuple((dt.datetime.fromisoformat(at), Limits.model_validate(lim)) for at, lim in _json(row["limits"] or "[]")))


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
