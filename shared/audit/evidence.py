"""The evidence pack of a community month, from the log alone: certified items, the certification
and its signatures, the notice and its channels, objections and their outcome, corrections, and
what the ranking service published about the month.

Files are CSV (UTF-8 with a BOM, so Excel shows the Chinese) and one ``pack.json``; ``SHA256SUMS``
lists every file's sha256 in ``sha256sum`` format. The pack's digest is the sha256 of that file:

    sha256sum -c SHA256SUMS && sha256sum SHA256SUMS

Nothing in a pack depends on when it was made or on other communities: two exports of the same
month are byte-identical until the month's own history changes (a later correction, say).
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from shared.audit.log import Log
from shared.events.declarations import PointsItem, SubjectRegistered
from shared.events.review import (
    CertificationSigned,
    CertifiedMonths,
    ItemVerified,
    MonthCertified,
    MonthFinalised,
    NoticePosted,
    ObjectionDismissed,
    ObjectionRaised,
    ObjectionUpheld,
    PointsAwarded,
    PointsCorrected,
)
from shared.vocabulary import CATEGORIES, CHANNELS, DIMENSIONS, NOTICE_CHANNELS, OBJECTION_STATUSES, words

SUMS = "SHA256SUMS"
DIGEST_COMMAND = f"sha256sum -c {SUMS} && sha256sum {SUMS}"


class NotCertified(LookupError):
    pass


def build(log: Log, community_id: str, month: str, tz: str) -> dict[str, Any]:
    """The pack's contents: table name -> rows (dicts, in a fixed order), plus the certification."""
    zone = ZoneInfo(tz)

    def local(t: Any) -> str:
        return t.astimezone(zone).isoformat(timespec="seconds")

    names = {e.event.subject_id: e.event.name for e in log.of(SubjectRegistered)  # type: ignore[attr-defined]
             if e.event.community_id == community_id}  # type: ignore[attr-defined]
    items = {e.event.item_id: e for e in log.of(PointsItem)  # type: ignore[attr-defined]
             if e.event.community_id == community_id}  # type: ignore[attr-defined]
    months = CertifiedMonths()
    verified_by: dict[str, str] = {}
    signatures, notices, raised, outcomes, corrections, ranking = [], [], {}, {}, [], []
    finalised: dict[str, Any] | None = None
    for e in log.entries:
        ev, env = e.event, e.envelope
        if getattr(ev, "community_id", None) != community_id:
            continue
        if isinstance(ev, PointsAwarded | MonthCertified):
            months.apply(ev)
        elif isinstance(ev, ItemVerified):
            verified_by[ev.item_id] = env.actor
        elif isinstance(ev, CertificationSigned) and ev.month == month:
            signatures.append({"signer": ev.signer, "name": ev.name, "role": ev.role, "digest": ev.digest,
                               "signed_at": local(ev.signed_at), "event_id": str(env.id)})
        elif isinstance(ev, NoticePosted) and ev.month == month:
            notices.append({"channel": ev.channel, "channel_name": words(NOTICE_CHANNELS, ev.channel),
                            "posted_at": local(ev.posted_at), "window_closes_at": local(ev.window_closes_at),
                            "actor": env.actor, "event_id": str(env.id)})
        elif isinstance(ev, ObjectionRaised) and ev.month == month:
            raised[ev.objection_id] = (ev, env)
        elif isinstance(ev, ObjectionUpheld | ObjectionDismissed) and ev.month == month:
            outcomes[ev.objection_id] = (ev, env)
        elif isinstance(ev, PointsCorrected) and month in (ev.month, ev.item_month):
            corrections.append({"correction_id": ev.correction_id, "item_id": ev.item_id, "item_month": ev.item_month,
                                "counted_in": ev.month, "subject_id": ev.subject_id,
                                "subject_name": names.get(ev.subject_id, ""), "delta": ev.delta, "reason": ev.reason,
                                "objection_id": ev.objection_id or "", "actor": env.actor,
                                "at": local(env.time), "event_id": str(env.id)})
        elif isinstance(ev, MonthFinalised) and ev.month == month:
            finalised = {"finalised_at": local(ev.finalised_at), "objections_upheld": ev.objections_upheld,
                         "objections_dismissed": ev.objections_dismissed, "event_id": str(env.id)}
        elif type(ev).SERVICE == "ranking" and _about(ev.model_dump(mode="json"), month):
            ranking.append({"type": type(ev).__name__, "at": local(env.time), "event_id": str(env.id),
                            "event": ev.model_dump(mode="json")})
    certified = months.certified.get((community_id, month))
    if certified is None:
        raise NotCertified(f"{community_id} 的 {month} 月尚未认定（日志中没有该月完整的认定记录）")
    closing, awards = certified
    closing_entry = next(e for e in log.of(MonthCertified) if e.event is closing)
    lines = []
    for a in sorted(awards, key=lambda a: a.item_id):
        item = items.get(a.item_id)
        item_ev = item.event if item is not None else None
        lines.append({"item_id": a.item_id, "subject_id": a.subject_id, "subject_name": names.get(a.subject_id, ""),
                      "category": words(CATEGORIES, a.category), "dimension": words(DIMENSIONS, a.dimension),
                      "rule_code": a.rule_code, "rule_title": getattr(item_ev, "rule_title", ""),
                      "points": a.points,
                      "occurred_on": item_ev.occurred_on.isoformat() if isinstance(item_ev, PointsItem) else "",
                      "channel": words(CHANNELS, item_ev.channel) if isinstance(item_ev, PointsItem) else "",
                      "entered_by": item_ev.entered_by if isinstance(item_ev, PointsItem) else "",
                      "verified_by": verified_by.get(a.item_id, "")})
    objections = []
    for oid, (ev, env) in sorted(raised.items()):
        outcome = outcomes.get(oid)
        status = "open" if outcome is None else ("upheld" if isinstance(outcome[0], ObjectionUpheld) else "dismissed")
        objections.append({"objection_id": oid, "item_id": ev.item_id, "raised_by": ev.raised_by_name or ev.raised_by,
                           "reason": ev.reason, "raised_at": local(env.time),
                           "outcome": words(OBJECTION_STATUSES, status),
                           "outcome_reason": "" if outcome is None else outcome[0].reason,
                           "decided_by": "" if outcome is None else outcome[1].actor,
                           "decided_at": "" if outcome is None else local(outcome[1].time)})
    certification = {"community_id": community_id, "month": month, "count": closing.count, "total": closing.total,
                     "digest": closing.digest, "signed_by": list(closing.signed_by),
                     "signer_names": list(closing.signer_names), "certified_at": local(closing.certified_at),
                     "event_id": str(closing_entry.envelope.id), "signatures": signatures, "finalised": finalised}
    return {"certification": certification, "items": lines, "notices": notices, "objections": objections,
            "corrections": sorted(corrections, key=lambda c: c["correction_id"]), "ranking": ranking}


def _about(body: dict[str, Any], month: str) -> bool:
    """A ranking event about this month: its month, or a period (quarter, year) that contains it."""
    if body.get("month") == month:
        return True
    period = str(body.get("period", ""))
    year, _, mm = month.partition("-")
    quarter = f"{year}-Q{(int(mm) - 1) // 3 + 1}"
    return period in (month, quarter, year)


def _csv(rows: Sequence[dict[str, Any]], columns: Iterable[str]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


COLUMNS = {
    "items": ("item_id", "subject_id", "subject_name", "category", "dimension", "rule_code", "rule_title", "points",
              "occurred_on", "channel", "entered_by", "verified_by"),
    "notices": ("channel", "channel_name", "posted_at", "window_closes_at", "actor", "event_id"),
    "objections": ("objection_id", "item_id", "raised_by", "reason", "raised_at", "outcome", "outcome_reason",
                   "decided_by", "decided_at"),
    "corrections": ("correction_id", "item_id", "item_month", "counted_in", "subject_id", "subject_name", "delta",
                    "reason", "objection_id", "actor", "at", "event_id"),
}


def files(pack: dict[str, Any]) -> dict[str, bytes]:
    out = {f"{name}.csv": _csv(pack[name], cols) for name, cols in COLUMNS.items()}
    out["pack.json"] = orjson.dumps(pack, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"
    sums = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(out.items()))
    out[SUMS] = sums.encode()
    return out


def write(pack: dict[str, Any], folder: Path) -> str:
    """Write the pack's files into ``folder`` (created; files of a previous pack are replaced);
    returns the pack's digest (sha256 of SHA256SUMS)."""
    folder.mkdir(parents=True, exist_ok=True)
    contents = files(pack)
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    return hashlib.sha256(contents[SUMS]).hexdigest()
