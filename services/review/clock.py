"""The clock, injected: handlers take ``now`` from here, domain functions get it passed in."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from fastapi import Request

from services.review.settings import review_settings


def system_now() -> dt.datetime:
    clock_file = review_settings().clock_file
    if clock_file:
        text = Path(clock_file).read_text().strip()
        if text:
            return dt.datetime.fromisoformat(text)
    return dt.datetime.now(dt.UTC)


def now(request: Request) -> dt.datetime:
    """FastAPI dependency; tests in the same process may set ``app.state.clock`` to a callable."""
    clock = getattr(request.app.state, "clock", None)
    return clock() if clock is not None else system_now()
