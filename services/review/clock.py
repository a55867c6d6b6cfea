"""The clock, injected: handlers take ``now`` from here, domain functions get it passed in.

A county admin may move it on a running stack (``POST /admin/clock``, only where
``REVIEW_CLOCK_ADJUSTABLE`` is set, audited as a ``ClockSet`` event) so a demo can show the
7-day objection window closing. The setting is a row in the service's own database: either a
frozen time or an offset from the real clock.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import asyncpg
from fastapi import Request

from services.review.settings import review_settings


def system_now() -> dt.datetime:
    clock_file = review_settings().clock_file
    if clock_file:
        text = Path(clock_file).read_text().strip()
        if text:
            return dt.datetime.fromisoformat(text)
    return dt.datetime.now(dt.UTC)


async def read(conn: asyncpg.Connection | asyncpg.Pool) -> dt.datetime:
    real = system_now()
    if not review_settings().clock_adjustable:
        return real
    row = await conn.fetchrow("select frozen_at, offset_seconds from review_clock")
    if row is None:
        return real
    if row["frozen_at"] is not None:
        return row["frozen_at"]  # type: ignore[no-any-return]
    return real + dt.timedelta(seconds=row["offset_seconds"])


async def now(request: Request) -> dt.datetime:
    """FastAPI dependency; tests in the same process may set ``app.state.clock`` to a callable."""
    clock = getattr(request.app.state, "clock", None)
    if clock is not None:
        return clock()  # type: ignore[no-any-return]
    return await read(request.app.state.runtime.pool)
