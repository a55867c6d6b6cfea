"""One path for every review command: load the state at a version, decide, append at that version, evolve.

Every review event goes to the community's stream ``community-<id>`` with key = community id.
Callers (HTTP, the late-item policy, tests, the benchmark) pass the command, with its time and
ids, in; the domain never makes them. A conflict (someone appended to the stream after the
version this command was decided on) undoes the attempt and decides the command again on the new
state, up to ``attempts`` times, then answers 409.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from services.review import state
from services.review.domain import commands as c
from services.review.domain.decide import decide
from services.review.domain.evolve import ReviewState, fold
from shared.envelope import Envelope
from shared.errors import Rejected
from shared.events.review import MonthCertified
from shared.store import ConcurrencyError, EventStore, Recorded

ATTEMPTS = 3


def stream_of(community_id: str) -> str:
    return f"community-{community_id}"


@dataclass(frozen=True)
class Outcome:
    envelopes: list[Envelope]
    state: ReviewState  # the state the events leave behind (for the answer)
    attempts: int


async def community_of(conn: asyncpg.Connection, command: c.Command) -> str:
    """The stream a command goes to. Items and objections never change community."""
    if isinstance(command, c.DecideItem | c.OverruleItem):
        found = await state.community_of_item(conn, command.item_id)
        if found is None:
            raise Rejected("找不到该条目（可能尚未同步到审核服务，请稍后再试）", status=404, code="item_not_found")
        return found
    if isinstance(command, c.ResolveObjection):
        found = await state.community_of_objection(conn, command.objection_id)
        if found is None:
            raise Rejected("找不到该异议", status=404, code="objection_not_found")
        return found
    return command.community_id


def _scope(command: c.Command) -> dict[str, Any]:
    """What ``decide`` looks at for this command (the rest of the community is not loaded)."""
    if isinstance(command, c.DecideItem | c.OverruleItem | c.CorrectItem):
        return {"item_ids": [command.item_id]}
    if isinstance(command, c.SignMonth):
        return {"month_items": [command.month]}
    if isinstance(command, c.RaiseObjection):
        return {"item_ids": [command.item_id], "objections_of": [command.month]}
    if isinstance(command, c.ResolveObjection):
        return {"objection_ids": [command.objection_id]}
    if isinstance(command, c.FinaliseMonth):
        return {"objections_of": [command.month]}
    if isinstance(command, c.CarryLateItems):
        return {"late": True}
    assert isinstance(command, c.PostNotice)
    return {}


async def handle(conn: asyncpg.Connection, store: EventStore, command: c.Command, rules: Callable[[str], c.Rules],
                 recorded: Recorded, *, attempts: int = ATTEMPTS,
                 decided: Callable[[int], Awaitable[None]] | None = None) -> Outcome:
    """Run one command inside the caller's transaction. ``decided(attempt)`` is called between the
    decision and the append (tests use it to make two commands decide on the same version)."""
    community_id = await community_of(conn, command)
    stream, community_rules = stream_of(community_id), rules(community_id)
    for attempt in range(1, attempts + 1):
        try:
            async with conn.transaction():  # a savepoint: a conflict undoes this attempt only
                version = await state.stream_version(conn, stream)
                before = await state.load(conn, community_id, **_scope(command))
                events = decide(command, before, community_rules)
                if isinstance(events, Rejected):
                    raise events
                if decided is not None:
                    await decided(attempt)
                envelopes = await store.append(conn, stream, version, events, key=community_id, recorded=recorded)
                after = fold(before, events)
                await state.save(conn, before, after)
                return Outcome(envelopes, after, attempt)
        except ConcurrencyError:
            continue
    raise Rejected(f"本社区的审核记录正被他人同时修改，已重新判断 {attempts} 次仍有冲突，请稍后再试",
                   status=409, code="conflict", attempts=attempts)


def summary(envelopes: Sequence[Envelope]) -> dict[str, object]:
    """A short answer: a certification has 100,000 events, the client needs the closing one."""
    closing = next((e for e in reversed(envelopes) if isinstance(e.event, MonthCertified)), None)
    out: dict[str, object] = {"event_count": len(envelopes)}
    if len(envelopes) <= 20:
        out["event_ids"] = [str(e.id) for e in envelopes]
    if closing is not None:
        assert isinstance(closing.event, MonthCertified)
        out |= {"month_certified_event_id": str(closing.id), "count": closing.event.count,
                "total": closing.event.total, "digest": closing.event.digest}
    return out
