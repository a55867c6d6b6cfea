"""``evolve``: the one fold of exchange events into the supermarket's state.

The read model in Postgres (services/exchange/tables.py) does the same in SQL; the property tests
hold this fold to the rules (stock and balances never negative, balance = certified − redeemed
+ returned), and the integration tests hold the tables to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from services.exchange.domain.model import Item, Redemption, Shelf, Shopper
from shared.events import Event
from shared.events.exchange import (
    ItemListed,
    LimitsChanged,
    PriceChanged,
    Redeemed,
    RedemptionReturned,
    StockReceived,
)


@dataclass(frozen=True)
class Supermarket:
    shelves: dict[str, Shelf] = field(default_factory=dict)
    shoppers: dict[str, Shopper] = field(default_factory=dict)
    redemptions: dict[str, Redemption] = field(default_factory=dict)


def evolve(state: Supermarket, ev: Event) -> Supermarket:
    if isinstance(ev, ItemListed):
        item = Item(ev.item_id, ev.community_id, ev.name, ev.unit, ((ev.effective_from, ev.price),),
                    ((ev.effective_from, ev.limits),))
        return replace(state, shelves={**state.shelves, ev.item_id: Shelf(item)})
    if isinstance(ev, PriceChanged | LimitsChanged | StockReceived):
        shelf = state.shelves[ev.item_id]
        if isinstance(ev, PriceChanged):
            shelf = replace(shelf, item=shelf.item.with_price(ev.effective_from, ev.price))
        elif isinstance(ev, LimitsChanged):
            shelf = replace(shelf, item=shelf.item.with_limits(ev.effective_from, ev.limits))
        else:
            shelf = replace(shelf, in_stock=shelf.in_stock + ev.quantity)
        return replace(state, shelves={**state.shelves, ev.item_id: shelf})
    if isinstance(ev, Redeemed | RedemptionReturned):
        sign = 1 if isinstance(ev, RedemptionReturned) else -1  # a redemption takes, a return gives back
        shelves = dict(state.shelves)
        shopper = state.shoppers[ev.subject_id]
        used = dict(shopper.used)
        for line in ev.lines:
            shelves[line.item_id] = replace(shelves[line.item_id],
                                            in_stock=shelves[line.item_id].in_stock + sign * line.quantity)
            used[(line.item_id, line.period_key)] = used.get((line.item_id, line.period_key), 0) - sign * line.quantity
        shopper = replace(shopper, spendable=shopper.spendable + sign * ev.total_points, used=used)
        if isinstance(ev, Redeemed):
            redemption = Redemption(ev.redemption_id, ev.community_id, ev.subject_id, ev.lines, ev.total_points)
        else:
            redemption = replace(state.redemptions[ev.redemption_id], returned=True)
        return replace(state, shelves=shelves, shoppers={**state.shoppers, ev.subject_id: shopper},
                       redemptions={**state.redemptions, ev.redemption_id: redemption})
    return state


def fold(state: Supermarket, events: Iterable[Event]) -> Supermarket:
    for ev in events:
        state = evolve(state, ev)
    return state


def credited(state: Supermarket, subject_id: str, points: int) -> Supermarket:
    """Certified awards and corrections arrive from the review topic: they raise the spendable balance."""
    shopper = state.shoppers[subject_id]
    shopper = replace(shopper, spendable=shopper.spendable + points)
    return replace(state, shoppers={**state.shoppers, subject_id: shopper})
