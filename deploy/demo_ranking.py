"""The ranking part of the demo: two more certified months before last month, then the board.

Called from ``deploy.demo.main`` after last month is certified: it certifies the two months
before it the same way (declarations, verification, two signatures, notice), so the ranking
service shows monthly, quarterly and yearly rankings and a consequence (party members in the
top 5 of the year: 可评优秀), and prints the public board's URL. Months before the catalogue's
first version (2026-01) are skipped.
"""

from __future__ import annotations

import calendar
import datetime as dt
import os
import time
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from deploy.demo import Demo

RANKING_URL = os.environ.get("RANKING_URL", "http://127.0.0.1:8103")
FIRST_CATALOGUE_MONTH = "2026-01"
COMMUNITY_BOARD = "/board?community="


def _earlier(month_first: dt.date, n: int) -> list[dt.date]:
    out, day = [], month_first
    for _ in range(n):
        day = (day - dt.timedelta(days=1)).replace(day=1)
        out.append(day)
    return sorted(out)


def certify_earlier_months(demo: Demo, n: int = 2) -> list[str]:
    """Certify the ``n`` months before ``demo.last`` (the demo's own steps, pointed at each month)."""
    saved = (demo.last, demo.last_first, demo.last_days)
    done = []
    try:
        for first in _earlier(saved[1], n):
            month = first.strftime("%Y-%m")
            if month < FIRST_CATALOGUE_MONTH:
                continue
            demo.last, demo.last_first = month, first
            demo.last_days = calendar.monthrange(first.year, first.month)[1]
            demo.certify_last_month(demo.last_month())
            done.append(month)
    finally:
        demo.last, demo.last_first, demo.last_days = saved
    return done


def wait_for_board(community: str, month: str, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{RANKING_URL}/rankings", params={"scope": community, "category": "party_member",
                                                               "period": month}, timeout=5)
            if r.status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return False


def run(demo: Demo, community: str) -> None:
    months = certify_earlier_months(demo)
    shown = wait_for_board(community, demo.last)
    print(f"demo: ranking: certified {', '.join([*months, demo.last])}; board "
          f"{'shows them' if shown else 'not up yet (is the ranking service running?)'}")
    print(f"  public board         {RANKING_URL}{COMMUNITY_BOARD}{community}")
