"""Events owned by the exchange service: the Love Supermarket (爱心超市).

Streams: ``item-<item id>`` (listing, price and limit changes, donations received), keyed by the
item's community id; ``redemption-<redemption id>`` (the redemption, then at most one return),
keyed by the subject id. Every event carries what a consumer needs without a lookup (names,
community, subject, prices paid), so a read model can be rebuilt from it in any partition order.

Spending is never a negative award: nothing here is a points item, so ranking scores never drop.
"""

from __future__ import annotations

import datetime as dt
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from shared.events import Event, event

Period = Literal["month", "quarter", "year"]


class ExchangeEvent(Event):
    SERVICE: ClassVar[str] = "exchange"


class DateWindow(BaseModel):
    """Days (county calendar, both ends included) in which an item may be redeemed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    first_day: dt.date
    last_day: dt.date


class Limits(BaseModel):
    """Who may redeem an item, when, and how many (分类兑换). Empty tuples: no restriction."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    categories: tuple[str, ...] = ()  # subject categories that may redeem it
    windows: tuple[DateWindow, ...] = ()  # the periods it is offered in
    per_subject: int | None = None  # units per subject per ``period``
    period: Period = "month"


@event
class ItemListed(ExchangeEvent):
    item_id: str
    community_id: str
    name: str
    unit: str
    price: int  # points per unit
    limits: Limits
    effective_from: dt.datetime
    listed_by: str


@event
class PriceChanged(ExchangeEvent):
    """Applies to redemptions decided at or after ``effective_from``; earlier ones keep their price."""

    item_id: str
    community_id: str
    change_id: str
    price: int
    effective_from: dt.datetime


@event
class LimitsChanged(ExchangeEvent):
    item_id: str
    community_id: str
    change_id: str
    limits: Limits
    effective_from: dt.datetime


@event
class StockReceived(ExchangeEvent):
    """A donation (整合社会各方资源): ``quantity`` units of an item from ``donor``."""

    item_id: str
    community_id: str
    item_name: str
    donation_id: str
    donor: str
    quantity: int
    received_on: dt.date


class RedeemedLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    item_id: str
    item_name: str
    quantity: int
    unit_price: int
    points: int  # quantity × unit_price
    period_key: str  # the limit period the units count in (e.g. 2026-12, 2026-Q4, 2026)


@event
class Redeemed(ExchangeEvent):
    """A basket redeemed at a counter: balance and stock already checked, in one transaction."""

    redemption_id: str
    community_id: str
    subject_id: str
    subject_name: str
    member_code: str
    lines: tuple[RedeemedLine, ...]
    total_points: int
    month: str  # YYYY-MM, county calendar: statistics count it here
    counter: str
    clerk: str
    redeemed_at: dt.datetime
    clerk_name: str = ""  # for the receipt


@event
class RedemptionReturned(ExchangeEvent):
    """A whole redemption returned: stock, points (at the price paid) and the limit allowance restored."""

    redemption_id: str
    community_id: str
    subject_id: str
    lines: tuple[RedeemedLine, ...]
    total_points: int
    month: str  # the month of the return: statistics count it here
    reason: str
    clerk: str
    returned_at: dt.datetime
