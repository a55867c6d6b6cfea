"""Commands of the exchange service: imperative, frozen, with who, when and the new ids passed in."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from shared.events.exchange import Limits


@dataclass(frozen=True)
class ListItem:
    item_id: str
    community_id: str
    name: str
    unit: str
    price: int
    limits: Limits
    effective_from: dt.datetime
    by: str


@dataclass(frozen=True)
class ChangePrice:
    item_id: str
    change_id: str
    price: int
    effective_from: dt.datetime
    now: dt.datetime


@dataclass(frozen=True)
class ChangeLimits:
    item_id: str
    change_id: str
    limits: Limits
    effective_from: dt.datetime
    now: dt.datetime


@dataclass(frozen=True)
class ReceiveDonation:
    item_id: str
    donation_id: str
    donor: str
    quantity: int
    received_on: dt.date


@dataclass(frozen=True)
class Line:
    item_id: str
    quantity: int
    seen_price: int | None = None  # the price the counter showed: a different price in force is refused


@dataclass(frozen=True)
class Redeem:
    redemption_id: str
    member_code: str
    lines: tuple[Line, ...]
    counter: str
    clerk: str
    clerk_community: str  # "*" for a county role
    at: dt.datetime
    day: dt.date  # ``at`` in the county calendar
    clerk_name: str = ""


@dataclass(frozen=True)
class ReturnRedemption:
    redemption_id: str
    reason: str
    clerk: str
    clerk_community: str
    at: dt.datetime
    day: dt.date
