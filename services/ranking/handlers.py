"""Load, decide, append, in a straight line (talks held, the leading group's selection)."""

from __future__ import annotations

import asyncpg

from services.ranking.domain.decide import (
    RecordTalk,
    SelectionState,
    SelectRoleModel,
    TalkState,
    record_talk,
    select_role_model,
)
from shared.envelope import Envelope
from shared.errors import conflict
from shared.store import ConcurrencyError, EventStore, Recorded


async def talk(conn: asyncpg.Connection, store: EventStore, cmd: RecordTalk, recorded: Recorded) -> list[Envelope]:
    stream = f"talks-{cmd.community_id}-{cmd.month}"
    version, _ = await store.stream_version(conn, stream)
    due = {(r["subject_id"], r["talk"]): r["category"] for r in await conn.fetch(
        "select * from rk_talks_due where community_id = $1 and month = $2", cmd.community_id, cmd.month)}
    held = frozenset((r["subject_id"], r["talk"]) for r in await conn.fetch(
        "select subject_id, talk from talks_held where community_id = $1 and month = $2", cmd.community_id, cmd.month))
    events = record_talk(cmd, TalkState(due, held))
    try:
        envelopes = await store.append(conn, stream, version, events, key=cmd.community_id, recorded=recorded)
    except ConcurrencyError as exc:
        raise conflict(1) from exc
    ev = events[0]
    await conn.execute("insert into talks_held values ($1, $2, $3, $4, $5, $6, $7, $8, $9)", ev.community_id,
                       ev.month, ev.subject_id, ev.talk, ev.category, ev.held_by, ev.note, recorded.time,
                       envelopes[0].id)
    return envelopes


async def select(conn: asyncpg.Connection, store: EventStore, cmd: SelectRoleModel, recorded: Recorded
                 ) -> list[Envelope]:
    stream = f"role-models-{cmd.community_id}-{cmd.month}"
    version, _ = await store.stream_version(conn, stream)
    nominated = {r["subject_id"]: r["name"] for r in await conn.fetch(
        """select n.subject_id, s.name from rk_nominations n join rk_subjects s using (subject_id)
           where n.community_id = $1 and n.month = $2 and n.award = $3""", cmd.community_id, cmd.month, cmd.award)}
    selected = frozenset(r["subject_id"] for r in await conn.fetch(
        "select subject_id from role_models where community_id = $1 and month = $2 and award = $3",
        cmd.community_id, cmd.month, cmd.award))
    events = select_role_model(cmd, SelectionState(nominated, selected))
    try:
        envelopes = await store.append(conn, stream, version, events, key=cmd.community_id, recorded=recorded)
    except ConcurrencyError as exc:
        raise conflict(1) from exc
    ev = events[0]
    await conn.execute("insert into role_models values ($1, $2, $3, $4, $5, $6, $7, $8, $9)", ev.community_id,
                       ev.month, ev.award, ev.subject_id, ev.name, ev.selected_by, ev.note, recorded.time,
                       envelopes[0].id)
    return envelopes
