"""One function per command, each a straight line inside the caller's transaction:
load (under row locks) → decide (pure) → apply the events to the service's tables → hand back
what to append and what to answer. A refusal is raised as ``Rejected`` before anything is written."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from services.exchange import state, tables
from services.exchange.domain import decide
from services.exchange.domain.commands import (
    ChangeLimits,
    ChangePrice,
    ListItem,
    ReceiveDonation,
    Redeem,
    ReturnRedemption,
)
from services.exchange.held import Held
from shared.errors import Rejected, require_same_community
from shared.events import Event


@dataclass
class Decided:
    stream: str
    version: int  # the stream's version the decision was made on (its rows locked)
    events: list[Event]
    key: str
    answer: dict[str, Any] = field(default_factory=dict)


def _ok(result: list[Any] | Rejected) -> list[Event]:
    if isinstance(result, Rejected):
        raise result
    return list(result)


async def _applied(conn: asyncpg.Connection, decided: Decided) -> Decided:
    await tables.apply(conn, decided.events)
    return decided


async def redeem(conn: asyncpg.Connection, command: Redeem, held: Held) -> Decided:
    """Decided on what the transaction holds; written with the rest of the batch (``Held.write``)."""
    item_ids = [line.item_id for line in command.lines]
    shopper = await held.shopper(conn, command.member_code, item_ids)
    if shopper is None:
        raise Rejected(f"查无此会员码（{command.member_code}），请核对会员卡", status=404, code="member_not_found")
    shelves = await held.shelves_for(conn, item_ids)
    result = decide.redeem(command, shopper, shelves)
    if isinstance(result, Rejected):
        raise result
    [ev] = result
    held.redeemed(shopper, ev)
    return Decided(f"redemption-{command.redemption_id}", 0, [ev], shopper.subject_id, {
        "redemption_id": command.redemption_id, "subject_name": shopper.name, "member_code": shopper.member_code,
        "total_points": ev.total_points, "balance_after": shopper.spendable - ev.total_points,
        "pending": shopper.pending, "lines": [line.model_dump() for line in ev.lines]})


async def return_redemption(conn: asyncpg.Connection, command: ReturnRedemption, held: Held) -> Decided:
    await held.release(conn)
    redemption = await state.redemption_for_update(conn, command.redemption_id)
    events = _ok(decide.return_redemption(command, redemption))
    assert redemption is not None
    return await _applied(conn, Decided(f"redemption-{command.redemption_id}", 1, events, redemption.subject_id, {
        "redemption_id": command.redemption_id, "refunded_points": redemption.total_points}))


async def list_item(conn: asyncpg.Connection, command: ListItem, held: Held) -> Decided:
    await held.release(conn)
    existing = await state.item_for_update(conn, command.item_id)
    events = _ok(decide.list_item(command, existing))
    return await _applied(conn, Decided(f"item-{command.item_id}", 0, events, command.community_id,
                                        {"item_id": command.item_id}))


async def change_item(conn: asyncpg.Connection, command: ChangePrice | ChangeLimits | ReceiveDonation,
                      acting_in: str, held: Held) -> Decided:
    await held.release(conn)
    item = await state.item_for_update(conn, command.item_id)
    if item is not None:
        require_same_community(acting_in, item.community_id)
    if isinstance(command, ChangePrice):
        events = _ok(decide.change_price(command, item))
        answer = {"change_id": command.change_id}
    elif isinstance(command, ChangeLimits):
        events = _ok(decide.change_limits(command, item))
        answer = {"change_id": command.change_id}
    else:
        events = _ok(decide.receive_donation(command, item))
        answer = {"donation_id": command.donation_id}
    assert item is not None
    version = await conn.fetchval("select coalesce(max(version), 0) from events where stream_id = $1",
                                  f"item-{command.item_id}")
    return await _applied(conn, Decided(f"item-{command.item_id}", version, events, item.community_id,
                                        {"item_id": command.item_id, **answer}))
