"""Given / when / then for the exchange domain: a supermarket built from events, a command decided on it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from services.exchange.domain import decide as d
from services.exchange.domain.commands import Line, Redeem, ReturnRedemption
from services.exchange.domain.evolve import Supermarket, fold
from services.exchange.domain.member_code import member_code
from services.exchange.domain.model import Shopper
from shared.errors import Rejected
from shared.events import Event
from shared.events.exchange import ItemListed, Limits, StockReceived

T0 = dt.datetime(2026, 12, 1, 1, 0, tzinfo=dt.UTC)
DAY = dt.date(2026, 12, 1)


def listed(item_id: str = "rice", price: int = 10, limits: Limits | None = None, community: str = "c-01",
           at: dt.datetime = T0) -> ItemListed:
    return ItemListed(item_id=item_id, community_id=community, name={"rice": "大米"}.get(item_id, item_id),
                      unit="袋", price=price, limits=limits or Limits(), effective_from=at, listed_by="clerk-1")


def donated(item_id: str = "rice", quantity: int = 5, donation: str = "d1") -> StockReceived:
    return StockReceived(item_id=item_id, community_id="c-01", item_name=item_id, donation_id=donation,
                         donor="爱心企业", quantity=quantity, received_on=DAY)


def shopper(subject: str = "s-1", spendable: int = 100, pending: int = 0, categories: tuple[str, ...] = ("resident",),
            community: str = "c-01") -> Shopper:
    return Shopper(subject, community, f"居民{subject}", member_code(subject), categories, spendable, pending)


def given(events: Sequence[Event], *shoppers: Shopper) -> Supermarket:
    return fold(Supermarket(shoppers={s.subject_id: s for s in shoppers}), events)


def redeem_command(*lines: tuple[str, int] | tuple[str, int, int], rid: str = "r1", clerk_community: str = "c-01",
                   at: dt.datetime = T0 + dt.timedelta(hours=1), day: dt.date = DAY) -> Redeem:
    return Redeem(rid, "", tuple(Line(*line) for line in lines), "counter-1", "clerk-1", clerk_community, at, day)


def when_redeeming(state: Supermarket, subject: str, command: Redeem) -> list[Event] | Rejected:
    return list(r) if not isinstance(r := d.redeem(command, state.shoppers[subject], state.shelves), Rejected) else r


def when_returning(state: Supermarket, rid: str, clerk_community: str = "c-01") -> list[Event] | Rejected:
    command = ReturnRedemption(rid, "坏了", "clerk-1", clerk_community, T0, DAY)
    r = d.return_redemption(command, state.redemptions.get(rid))
    return r if isinstance(r, Rejected) else list(r)
