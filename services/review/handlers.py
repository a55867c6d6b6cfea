"""Command handlers: lock the community, load state, decide, append events, update state; one transaction.

Every review event goes to the community's stream ``community-<id>`` with key = community id.
Callers (HTTP, tests, the benchmark) pass ``now`` and ids in; the domain never makes them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import replace

import asyncpg

from services.review import state
from services.review.domain import certification, notice, verification
from services.review.domain.model import Signer, local_date, month_of
from services.review.domain.notice import Objection
from services.review.settings import ReviewSettings
from shared.commands import Rejected
from shared.envelope import Envelope
from shared.events.review import Channel, Decision, MonthCertified, ReviewEvent
from shared.store import EventStore, Recorded


def stream_of(community_id: str) -> str:
    return f"community-{community_id}"


async def append(conn: asyncpg.Connection, store: EventStore, community_id: str, events: Sequence[ReviewEvent],
                 recorded: Recorded) -> list[Envelope]:
    stream = stream_of(community_id)
    version, _ = await store.stream_version(conn, stream)  # under the community lock: nobody else appends
    return await store.append(conn, stream, version, events, key=community_id, recorded=recorded)


async def _item(conn: asyncpg.Connection, item_id: str, community: str) -> state.Item:
    it = await state.item(conn, item_id)
    if it is None:
        raise Rejected("找不到该条目（可能尚未同步到审核服务，请稍后再试）", status=404, code="item_not_found")
    if community not in ("*", it.community_id):
        raise Rejected(f"无权操作其他社区（{it.community_id}）的数据", status=403, code="forbidden_community")
    return it


async def decide_item(conn: asyncpg.Connection, store: EventStore, *, item_id: str, actor_community: str,
                      decision: Decision, note: str, overrule: bool, recorded: Recorded) -> list[Envelope]:
    it = await _item(conn, item_id, actor_community)
    await state.lock_community(conn, it.community_id)
    it = await _item(conn, item_id, actor_community)
    m = await state.month(conn, it.community_id, it.month)
    ev = (verification.overrule(it, m, decision, note) if overrule
          else verification.decide(it, m, decision, note))
    await state.set_status(conn, it, verification.status_after(ev))
    return await append(conn, store, it.community_id, [ev], recorded)


async def certify(conn: asyncpg.Connection, store: EventStore, *, community_id: str, month: str,
                  signers: Sequence[Signer], now: dt.datetime, settings: ReviewSettings, tz: str,
                  recorded: Recorded) -> list[Envelope]:
    await state.lock_community(conn, community_id)
    m = await state.month(conn, community_id, month)
    items = await state.items_of_month(conn, community_id, month)
    events = certification.certify(m, signers, items, now=now, quorum=settings.quorum, tz=tz)
    await state.save_month(conn, replace(m, certified_at=now))
    return await append(conn, store, community_id, events, recorded)


async def post_notice(conn: asyncpg.Connection, store: EventStore, *, community_id: str, month: str,
                      channels: Sequence[Channel], now: dt.datetime, settings: ReviewSettings,
                      recorded: Recorded) -> list[Envelope]:
    await state.lock_community(conn, community_id)
    m = await state.month(conn, community_id, month)
    events = notice.post_notice(m, channels, now=now, window=dt.timedelta(days=settings.objection_window_days))
    await state.save_month(conn, replace(m, window_closes_at=events[0].window_closes_at,
                                         channels=tuple(dict.fromkeys([*m.channels, *channels]))))
    return await append(conn, store, community_id, events, recorded)


async def object_to(conn: asyncpg.Connection, store: EventStore, *, community_id: str, month: str, item_id: str,
                    resident: str, resident_community: str, reason: str, now: dt.datetime,
                    recorded: Recorded) -> tuple[str, list[Envelope]]:
    await state.lock_community(conn, community_id)
    m = await state.month(conn, community_id, month)
    it = await state.item(conn, item_id)
    if it is not None and (it.community_id, it.month) != (community_id, month):
        it = None
    awarded = it is not None and it.status == "verified" and m.certified_at is not None
    objection_id = str(uuid.uuid4())
    ev = notice.raise_objection(m, it, awarded, await state.objections(conn, community_id, month),
                                resident=resident, resident_community=resident_community,
                                objection_id=objection_id, reason=reason, now=now)
    await state.save_objection(conn, Objection(objection_id, community_id, month, item_id, resident, "open"))
    return objection_id, await append(conn, store, community_id, [ev], recorded)


async def _landing_month(conn: asyncpg.Connection, community_id: str, now: dt.datetime, tz: str) -> str:
    return notice.landing_month(await state.certified_months(conn, community_id), month_of(local_date(now, tz)))


async def resolve(conn: asyncpg.Connection, store: EventStore, *, objection_id: str, actor_community: str,
                  uphold: bool, delta: int, reason: str, now: dt.datetime, tz: str,
                  recorded: Recorded) -> list[Envelope]:
    o = await state.objection(conn, objection_id)
    if o is None or actor_community not in ("*", o.community_id):
        raise Rejected("找不到该异议", status=404, code="objection_not_found")
    await state.lock_community(conn, o.community_id)
    o = await state.objection(conn, objection_id)
    events: list[ReviewEvent]
    if uphold:
        it = await _item(conn, o.item_id if o else "", actor_community)
        events = notice.uphold(o, it, open_month=await _landing_month(conn, it.community_id, now, tz), delta=delta,
                               reason=reason, correction_id=str(uuid.uuid4()))
    else:
        events = [notice.dismiss(o, reason=reason)]
    assert o is not None
    await state.save_objection(conn, replace(o, status="upheld" if uphold else "dismissed"))
    return await append(conn, store, o.community_id, events, recorded)


async def correct(conn: asyncpg.Connection, store: EventStore, *, community_id: str, item_id: str, delta: int,
                  reason: str, now: dt.datetime, tz: str, recorded: Recorded) -> list[Envelope]:
    await state.lock_community(conn, community_id)
    it = await state.item(conn, item_id)
    if it is not None and it.community_id != community_id:
        it = None
    item_month = await state.month(conn, community_id, it.month if it else "")
    ev = notice.correct(it, item_month, open_month=await _landing_month(conn, community_id, now, tz), delta=delta,
                        reason=reason, correction_id=str(uuid.uuid4()))
    return await append(conn, store, community_id, [ev], recorded)


async def finalise(conn: asyncpg.Connection, store: EventStore, *, community_id: str, month: str,
                   now: dt.datetime, recorded: Recorded) -> list[Envelope]:
    await state.lock_community(conn, community_id)
    m = await state.month(conn, community_id, month)
    ev = notice.finalise(m, await state.objections(conn, community_id, month), now=now)
    await state.save_month(conn, replace(m, finalised_at=now))
    return await append(conn, store, community_id, [ev], recorded)


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
