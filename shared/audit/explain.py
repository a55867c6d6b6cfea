"""Why a subject has the points it has on a date: every event that contributed, with who did what.

Read from the log only (``shared.audit.log``). On ``day`` (the county's civil date) a subject's
certified points are the awards of months certified by the end of that day, plus the corrections
made by then; items declared but not yet certified are shown as pending. Each line names the
actor who entered it, its channel, the reviewer's decisions and the certification that made it
count. Rankings and balances, when the log has them, come from the ranking and exchange topics.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from shared.audit.log import Entry, Log
from shared.events import Event
from shared.events.declarations import PointsItem, SubjectRegistered
from shared.events.review import (
    CertifiedMonths,
    ItemDecision,
    MonthCertified,
    PointsAwarded,
    PointsCorrected,
)
from shared.vocabulary import CATEGORIES, CHANNELS, words


@dataclass
class Decision:
    kind: str  # the event's name, e.g. ItemVerified
    actor: str
    at: str
    detail: str = ""


@dataclass
class Line:
    item_id: str
    occurred_on: str
    rule_code: str
    rule_title: str
    dimension: str
    points: int
    channel: str
    entered_by: str
    declared_by: str
    entered_at: str
    event_id: str
    decisions: list[Decision] = field(default_factory=list)
    certified_in: str | None = None  # the month whose certification made it count
    certified_at: str | None = None
    signed_by: list[str] = field(default_factory=list)
    certification_event_id: str | None = None


@dataclass
class Correction:
    correction_id: str
    item_id: str
    delta: int
    reason: str
    actor: str
    at: str
    objection_id: str | None
    event_id: str


@dataclass
class Explanation:
    subject_id: str
    name: str
    community_id: str
    categories: list[str]
    day: str
    certified_points: int = 0
    pending_points: int = 0
    lines: list[Line] = field(default_factory=list)
    corrections: list[Correction] = field(default_factory=list)
    other: list[dict[str, Any]] = field(default_factory=list)  # ranking and exchange events about the subject

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def end_of(day: dt.date, tz: str) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), ZoneInfo(tz))


def explain(log: Log, subject_id: str, day: dt.date, tz: str) -> Explanation | None:
    """None when the log never registered the subject."""
    until, zone = end_of(day, tz), ZoneInfo(tz)

    def local(t: dt.datetime) -> str:
        return t.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")

    def by_then(e: Entry) -> bool:
        return e.envelope.time < until

    registered = next((e.event for e in log.of(SubjectRegistered)
                       if isinstance(e.event, SubjectRegistered) and e.event.subject_id == subject_id), None)
    if registered is None:
        return None
    out = Explanation(subject_id, registered.name, registered.community_id, list(registered.categories),
                      day.isoformat())
    lines: dict[str, Line] = {}
    for e in log.of(PointsItem):
        ev = e.event
        assert isinstance(ev, PointsItem)
        if ev.subject_id == subject_id and by_then(e):
            lines[ev.item_id] = Line(ev.item_id, ev.occurred_on.isoformat(), ev.rule_code, ev.rule_title,
                                     ev.dimension, ev.points, ev.channel, ev.entered_by, ev.declared_by,
                                     local(e.envelope.time), str(e.envelope.id))
    months = CertifiedMonths()
    for e in log.entries:
        ev = e.event
        if not by_then(e):
            continue
        if isinstance(ev, ItemDecision) and ev.item_id in lines:
            lines[ev.item_id].decisions.append(Decision(type(ev).__name__, e.envelope.actor, local(e.envelope.time),
                                                        _detail(ev)))
        elif isinstance(ev, PointsAwarded | MonthCertified):
            months.apply(ev)
        elif isinstance(ev, PointsCorrected) and ev.subject_id == subject_id:
            out.corrections.append(Correction(ev.correction_id, ev.item_id, ev.delta, ev.reason, e.envelope.actor,
                                              local(e.envelope.time), ev.objection_id, str(e.envelope.id)))
            out.certified_points += ev.delta
        elif e.envelope.key == subject_id or getattr(ev, "subject_id", None) == subject_id:
            if type(ev).SERVICE in ("ranking", "exchange"):
                out.other.append({"type": type(ev).__name__, "at": local(e.envelope.time), "actor": e.envelope.actor,
                                  "event_id": str(e.envelope.id), "event": ev.model_dump(mode="json")})
    closing_ids = {id(e.event): str(e.envelope.id) for e in log.of(MonthCertified)}
    for closing, awards in months.certified.values():
        for award in awards:
            if award.subject_id != subject_id or award.item_id not in lines:
                continue
            line = lines[award.item_id]
            line.certified_in, line.certified_at = closing.month, local(closing.certified_at)
            line.signed_by = list(closing.signer_names or closing.signed_by)
            line.certification_event_id = closing_ids[id(closing)]
            out.certified_points += award.points
    out.lines = sorted(lines.values(), key=lambda x: (x.occurred_on, x.item_id))
    out.pending_points = sum(x.points for x in out.lines if x.certified_in is None
                             and not any(d.kind in ("ItemRejected",) for d in x.decisions[-1:]))
    return out


def _detail(ev: Event) -> str:
    for name in ("reason", "to_fix", "to_month"):
        value = getattr(ev, name, None)
        if value:
            return str(value)
    return ""


def render(x: Explanation) -> list[str]:
    """The explanation as lines of zh-CN text for a terminal."""
    cats = "、".join(words(CATEGORIES, c) for c in x.categories)
    out = [f"{x.name}（{x.subject_id}，{cats}）截至 {x.day}：已认定 {x.certified_points} 分，"
           f"待认定 {x.pending_points} 分"]
    for line in x.lines:
        state = (f"计入 {line.certified_in} 认定（{line.certified_at}，签署：{'、'.join(line.signed_by)}）"
                 if line.certified_in else "未认定")
        out.append(f"  {line.occurred_on} {line.rule_title or line.rule_code} {line.points:+d} 分，"
                   f"{words(CHANNELS, line.channel)}，录入 {line.entered_by}，{state}")
        out += [f"      {d.at} {d.kind} {d.actor} {d.detail}".rstrip() for d in line.decisions]
    out += [f"  更正 {c.at} {c.delta:+d} 分（条目 {c.item_id}）{c.actor}：{c.reason}" for c in x.corrections]
    out += [f"  {o['at']} {o['type']} {o['actor']}" for o in x.other]
    return out
