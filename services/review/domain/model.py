"""What the review decisions look at: items, their status, signers, months. No I/O here."""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

Status = Literal["submitted", "verified", "returned", "rejected"]
WAITING: tuple[Status, ...] = ("submitted",)


@dataclass(frozen=True, slots=True)
class Item:
    item_id: str
    community_id: str
    month: str  # YYYY-MM of occurred_on
    subject_id: str
    category: str
    dimension: str
    rule_code: str
    points: int
    entered_by: str
    declared_by: str
    status: Status = "submitted"
    carried_from: str | None = None  # the declared month, when the item was carried into ``month``
    corrected: int = 0  # the sum of the corrections made to it so far

    def by(self, person: str) -> bool:
        """Declared or recorded by this person (separation of duties)."""
        return person in (self.entered_by, self.declared_by)


@dataclass(frozen=True, slots=True)
class Signer:
    """A leading group member confirming a certification (the secretary is 第一责任人)."""

    sub: str
    role: str  # "secretary" or "leading_group"
    community: str
    name: str = ""  # as the token names the person, for the public notice


@dataclass(frozen=True, slots=True)
class Signature:
    """A member's signature on one digest of the month's certified list."""

    signer: Signer
    digest: str
    signed_at: dt.datetime


@dataclass(frozen=True, slots=True)
class MonthState:
    community_id: str
    month: str
    certified_at: dt.datetime | None = None
    window_opened_at: dt.datetime | None = None
    window_closes_at: dt.datetime | None = None
    finalised_at: dt.datetime | None = None
    channels: tuple[str, ...] = ()
    signatures: tuple[Signature, ...] = ()


def month_of(day: dt.date) -> str:
    return day.strftime("%Y-%m")


def local_date(now: dt.datetime, tz: str) -> dt.date:
    return now.astimezone(ZoneInfo(tz)).date()


def local_time(when: dt.datetime, tz: str) -> str:
    """A time as the county reads it (reasons and pages print Beijing time, never UTC)."""
    return when.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


def last_day(month: str) -> dt.date:
    year, mon = (int(p) for p in month.split("-"))
    return dt.date(year, mon, calendar.monthrange(year, mon)[1])


def next_month(month: str) -> str:
    return month_of(last_day(month) + dt.timedelta(days=1))
