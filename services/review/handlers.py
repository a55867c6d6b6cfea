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
from services.review.domain.page import LookDecided, decide_page
from shared.envelope import Envelope
from shared.errors import Rejected
from shared.events.review import MonthCertified
from shared.store import ConcurrencyError, EventStore, Recorded

ATTEMPTS = 3
PAGE_LOCK = 7_420_010  # pg_advisory_xact_lock(PAGE_LOCK, hashtext(stream)): one page of looks per community at a time


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
    raise _conflict(attempts)


def _conflict(attempts: int) -> Rejected:
    return Rejected(f"本社区的审核记录正被他人同时修改，已重新判断 {attempts} 次仍有冲突，请稍后再试",
                    status=409, code="concurrent_update", attempts=attempts)


@dataclass(frozen=True)
class PageOutcome:
    looks: list[LookDecided]  # in the order asked
    envelopes: dict[str, list[Envelope]]  # the events each accepted look appended, by item id
    attempts: int


async def handle_page(conn: asyncpg.Connection, store: EventStore, command: c.DecideItems,
                      rules: Callable[[str], c.Rules], recorded: Recorded, *, attempts: int = ATTEMPTS,
                      decided: Callable[[int], Awaitable[None]] | None = None) -> PageOutcome:
    """A page of looks inside the caller's transaction, per community of its items (a recorder's page:
    one): the community's page lock, the stream's version, the items' state, ``decide`` per look
    (``decide_page``), one append of every accepted look's events at that version, one snapshot write.
    Looks at unknown items or at another community's items go through ``decide`` too and are refused
    there, like single ones. The page lock queues pages of one community (a page decided again after
    a conflict costs a whole page); single looks still race optimistically and a conflict with one
    decides the page again; the last of ``attempts`` holds the log's lock from the version read to the
    append, so a page is never starved by a stream of single looks (they wait that long)."""
    ids = [look.item_id for look in command.looks]
    rows = await conn.fetch("select item_id, community_id from items where item_id = any($1::text[])", ids)
    community_of_item = {r["item_id"]: r["community_id"] for r in rows}
    groups: dict[str, list[c.DecideItem]] = {}
    for look in command.looks:
        groups.setdefault(community_of_item.get(look.item_id, ""), []).append(look)
    decided_looks: dict[str, LookDecided] = {}
    envelopes: dict[str, list[Envelope]] = {}
    used = 1
    for community_id in sorted(groups):  # in one order, so two county-wide pages cannot deadlock
        looks = groups[community_id]
        acts_here = community_id != "" and all(look.actor.community in ("*", community_id) for look in looks)
        stream = stream_of(community_id)
        if acts_here:
            await conn.execute("select pg_advisory_xact_lock($1, hashtext($2))", PAGE_LOCK, stream)
        for attempt in range(1, attempts + 1):
            if acts_here and attempt == attempts > 1:
                await store.hold_log(conn)  # a page losing every race to single looks: the last attempt cannot
            try:
                async with conn.transaction():  # a savepoint: a conflict undoes this attempt only
                    version = await state.stream_version(conn, stream)
                    before = (await state.load(conn, community_id, item_ids=[look.item_id for look in looks])
                              if community_id else ReviewState(""))
                    outcomes, after = decide_page(looks, before, rules(community_id))
                    if decided is not None:
                        await decided(attempt)
                    appended = await store.append(conn, stream, version, [e for o in outcomes for e in o.events],
                                                  key=community_id, recorded=recorded)
                    await state.save(conn, before, after)
                    used = max(used, attempt)
                    break
            except ConcurrencyError:
                continue
        else:
            raise _conflict(attempts)
        at = 0
        for o in outcomes:
            decided_looks[o.look.item_id] = o
            if o.events:
                envelopes[o.look.item_id], at = appended[at:at + len(o.events)], at + len(o.events)
    return PageOutcome([decided_looks[i] for i in ids], envelopes, used)


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
