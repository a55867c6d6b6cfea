"""Periods a ranking covers: a month (2026-11), a quarter (2026-Q4) or a year (2026). Pure."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from shared.errors import Rejected

_MONTH = re.compile(r"^(20\d{2})-(0[1-9]|1[0-2])$")
_QUARTER = re.compile(r"^(20\d{2})-Q([1-4])$")
_YEAR = re.compile(r"^(20\d{2})$")


@dataclass(frozen=True, order=True)
class Period:
    kind: str  # month, quarter, year
    code: str  # 2026-11, 2026-Q4, 2026
    months: tuple[str, ...]

    @property
    def first_day(self) -> dt.date:
        return dt.date.fromisoformat(self.months[0] + "-01")

    @property
    def last_day(self) -> dt.date:
        y, m = map(int, self.months[-1].split("-"))
        nxt = dt.date(y + (m == 12), m % 12 + 1, 1)
        return nxt - dt.timedelta(days=1)


def month(code: str) -> Period:
    return Period("month", code, (code,))


def quarter(year: int, q: int) -> Period:
    return Period("quarter", f"{year}-Q{q}", tuple(f"{year}-{m:02d}" for m in range(3 * q - 2, 3 * q + 1)))


def year(y: int) -> Period:
    return Period("year", str(y), tuple(f"{y}-{m:02d}" for m in range(1, 13)))


def parse(code: str) -> Period:
    """A period from its code; a malformed one is a 422 with the accepted forms."""
    if m := _MONTH.match(code):
        return month(code)
    if m := _QUARTER.match(code):
        return quarter(int(m.group(1)), int(m.group(2)))
    if m := _YEAR.match(code):
        return year(int(m.group(1)))
    raise Rejected(f"期间格式不正确：{code!r}，应为月份（2026-11）、季度（2026-Q4）或年度（2026）", status=422,
                   code="malformed_period")


def containing(month_code: str) -> tuple[Period, Period, Period]:
    """The month, its quarter and its year: the rankings a certified month changes."""
    y, m = map(int, month_code.split("-"))
    return month(month_code), quarter(y, (m - 1) // 3 + 1), year(y)


def previous_quarter(p: Period) -> Period:
    y, q = int(p.code[:4]), int(p.code[-1])
    return quarter(y - 1, 4) if q == 1 else quarter(y, q - 1)


def refuse_future(p: Period, today: dt.date) -> None:
    if p.first_day > today:
        raise Rejected(f"期间 {p.code} 尚未开始，没有排名", status=422, code="future_period")
