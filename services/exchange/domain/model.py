"""The supermarket's state as decisions see it: items with their terms over time, shelves, shoppers.

Plain frozen values; ``evolve`` folds events into them and ``decide`` reads them. The handler
loads only the part a command touches (one shopper, the items of a basket) under row locks.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import TypeVar

from shared.events.exchange import Limits, Period, RedeemedLine

T = TypeVar("T")


@dataclass(frozen=True)
class Item:
    item_id: str
    community_id: str
    name: str
    unit: str
    prices: tuple[tuple[dt.datetime, int], ...]  # (effective from, points per unit), in time order
    limits: tuple[tuple[dt.datetime, Limits], ...]

    def price_at(self, at: dt.datetime) -> int | None:
        """The price in force at ``at``; None before the item was offered."""
        return _in_force(self.prices, at)

    def limits_at(self, at: dt.datetime) -> Limits | None:
        return _in_force(self.limits, at)

    def with_price(self, effective_from: dt.datetime, price: int) -> Item:
        return replace(self, prices=_scheduled(self.prices, effective_from, price))

    def with_limits(self, effective_from: dt.datetime, limits: Limits) -> Item:
        return replace(self, limits=_scheduled(self.limits, effective_from, limits))


def _in_force(schedule: tuple[tuple[dt.datetime, T], ...], at: dt.datetime) -> T | None:
    found = None
    for since, value in schedule:
        if since <= at:
            found = value
    return found


def _scheduled(schedule: tuple[tuple[dt.datetime, T], ...], since: dt.datetime, value: T
                  ) -> tuple[tuple[dt.datetime, T], ...]:
    """A later change at the same instant replaces the earlier one (the log's order decides)."""
    kept = [(s, v) for s, v in schedule if s != since]
    return tuple(sorted([*kept, (since, value)], key=lambda sv: sv[0]))


@dataclass(frozen=True)
class Shelf:
    """An item and the units on the shelf (received − redeemed + returned)."""

    item: Item
    in_stock: int = 0


@dataclass(frozen=True)
class Shopper:
    """A subject at the counter: spendable = certified awards + corrections − redeemed + returned."""

    subject_id: str
    community_id: str
    name: str
    member_code: str
    categories: tuple[str, ...] = ()
    spendable: int = 0
    pending: int = 0  # points still in review: shown, never spent
    used: dict[tuple[str, str], int] = field(default_factory=dict)  # (item id, period key) -> units


@dataclass(frozen=True)
class Redemption:
    redemption_id: str
    community_id: str
    subject_id: str
    lines: tuple[RedeemedLine, ...]
    total_points: int
    returned: bool = False


def period_key(period: Period, day: dt.date) -> str:
    """The limit period a day falls in, county calendar."""
    if period == "year":
        return f"{day.year}"
    if period == "quarter":
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    return f"{day.year}-{day.month:02d}"
