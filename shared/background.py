"""Background loops that must outlive a failure (a broker away, PostgreSQL restarting)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from shared.logging import get_logger

log = get_logger("background")


async def supervise(name: str, start: Callable[[], Awaitable[None]], stop: asyncio.Event) -> None:
    """Keep a background loop alive: restart it with back-off if it fails (e.g. broker away)."""
    backoff = 0.5
    while not stop.is_set():
        try:
            await start()
            backoff = 0.5
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("background.failed", task=name, error=repr(exc), retry_in_s=backoff)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            backoff = min(backoff * 2, 10.0)
