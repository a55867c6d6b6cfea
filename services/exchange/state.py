"""Loading the part of the supermarket a command touches, under row locks, for ``decide``.

Lock order, always: the redemption row (returns), the shopper's balance row, then stock rows in
item id order. Two counters serving one shopper or one item therefore queue, never overdraw.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from services.exchange.domain.model import Item, Redemption, Shelf, Shopper
from shared.events.exchange import Limits, RedeemedLine

_SPENDABLE = "b.awarded + b.corrected - b.redeemed + b.returned"


async def shopper_for_update(conn: asyncpg.Connection, code: str, item_ids: Sequence[str]) -> Shopper | None:
    member = await conn.fetchrow("select * from members where member_code = $1", code)
    if member is None:
        return None
    await conn.execute("insert into balances (subject_id, community_id) values ($1, $2) on conflict do nothing",
                       member["subject_id"], member["community_id"])
    spendable = await conn.fetchval(f"select {_SPENDABLE} from balances b where subject_id = $1 for update",
                                    member["subject_id"])
    pending = await conn.fetchval("""select coalesce(sum(points), 0) from points_items
                                     where subject_id = $1 and state = 'submitted'""", member["subject_id"])
    used = await conn.fetch("select item_id, period_key, units from usage where subject_id = $1 and item_id = any($2)",
                            member["subject_id"], list(item_ids))
    return Shopper(member["subject_id"], member["community_id"], member["name"], member["member_code"],
                   tuple(member["categories"]), int(spendable), int(pending),
                   {(u["item_id"], u["period_key"]): u["units"] for u in used})


async def shelves_for_update(conn: asyncpg.Connection, item_ids: Sequence[str]) -> dict[str, Shelf]:
    ids = sorted(set(item_ids))
    stock = await conn.fetch("""select item_id, received - redeemed + returned as in_stock from stock
                                where item_id = any($1) order by item_id for update""", ids)
    items = await items_by_id(conn, ids)
    return {r["item_id"]: Shelf(items[r["item_id"]], r["in_stock"]) for r in stock if r["item_id"] in items}


async def items_by_id(conn: asyncpg.Connection, ids: Sequence[str]) -> dict[str, Item]:
    rows = await conn.fetch("select * from catalogue_items where item_id = any($1)", list(ids))
    prices = await conn.fetch("select * from item_prices where item_id = any($1) order by effective_from", list(ids))
    limits = await conn.fetch("select * from item_limits where item_id = any($1) order by effective_from", list(ids))
    return {r["item_id"]: Item(
        r["item_id"], r["community_id"], r["name"], r["unit"],
        tuple((p["effective_from"], p["price"]) for p in prices if p["item_id"] == r["item_id"]),
        tuple((lim["effective_from"], Limits.model_validate_json(lim["limits"])) for lim in limits
              if lim["item_id"] == r["item_id"])) for r in rows}


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


def _json(value: object) -> list[dict[str, object]]:
    import orjson

    return orjson.loads(value) if isinstance(value, str | bytes) else value  # type: ignore[return-value]
