"""The load's plumbing: tokens per role, a tally of what the services answered, bounded concurrency."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from deploy.simulate.client import Client
from shared.auth import Principal, Role, issue_token

# Token subjects per role; "reviewer" is a second recorder (nobody verifies an item they entered).
SUBS = {"recorder": "rec", "reviewer": "chk", "supervisor": "sup", "site": "site", "secretary": "sec",
        "leading_group": "lg", "clerk": "clerk", "county_admin": "county-admin"}


class Tokens:
    """One signed token per (role, community), made once."""

    def __init__(self) -> None:
        self._made: dict[tuple[str, str], str] = {}

    def __call__(self, role: str, community: str) -> str:
        if (role, community) not in self._made:
            real = Role.recorder if role == "reviewer" else Role(role)
            sub = SUBS[role] if role == "county_admin" else f"{SUBS[role]}-{community}"
            self._made[role, community] = issue_token(Principal(sub=sub, role=real, community=community, name=sub),
                                                      days=7)
        return self._made[role, community]


@dataclass
class Tally:
    """What the load saw: answers by status and error code, latencies of single declarations."""

    done: int = 0
    items: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    first: float = 0.0
    last: float = 0.0

    def record(self, status: int, answer: Any, started: float, items: int = 0, single: bool = False) -> None:
        now = time.monotonic()
        self.first = self.first or started
        self.last = now
        self.done += 1
        code = str(status) if status < 300 or not isinstance(answer, dict) else f"{status} {answer.get('error')}"
        self.statuses[code] += 1
        if status < 300:
            self.items += items
            if single:
                self.latencies.append(now - started)

    @property
    def refused(self) -> dict[str, int]:
        return {k: v for k, v in self.statuses.items() if not k.startswith("2")}


async def in_parallel(n: int, jobs: Iterable[Callable[[], Awaitable[None]]]) -> None:
    """Run ``jobs`` with at most ``n`` at a time."""
    queue = list(jobs)
    queue.reverse()

    async def worker() -> None:
        while queue:
            await queue.pop()()

    await asyncio.gather(*(worker() for _ in range(max(1, n))))


async def post_ok(client: Client, path: str, body: Any, key: str, token: str, retry_on: tuple[str, ...] = (),
                  patience_s: float = 300) -> Any:
    """POST until 2xx, retrying the ``retry_on`` refusals (e.g. a concurrent update) with the same key."""
    deadline = time.monotonic() + patience_s
    while True:
        status, answer = await client.post(path, body, key, token)
        if status < 300:
            return answer
        error = answer.get("error") if isinstance(answer, dict) else None
        if error not in retry_on or time.monotonic() > deadline:
            raise RuntimeError(f"{path} refused ({status}): {answer}")
        await asyncio.sleep(0.2)
