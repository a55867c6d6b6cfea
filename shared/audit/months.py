"""Every certified month against its awards: count, total and digest, as any consumer checks them."""

from __future__ import annotations

from dataclasses import dataclass

from shared.audit.log import Log
from shared.events.review import CertifiedMonths, MonthCertified, PointsAwarded, certification_digest


@dataclass(frozen=True)
class MonthCheck:
    community_id: str
    month: str
    ok: bool
    count: int  # what MonthCertified says
    total: int
    awards: int  # what the log holds before it
    points: int
    detail: str = ""


def check_months(log: Log) -> list[MonthCheck]:
    """One line per MonthCertified; awards still waiting for their MonthCertified are a problem too."""
    months = CertifiedMonths()
    checks: list[MonthCheck] = []
    for entry in log.of(PointsAwarded, MonthCertified):
        ev = entry.event
        if isinstance(ev, MonthCertified):
            awards = tuple(months.pending.get((ev.community_id, ev.month), {}).values())
            months.apply(ev)
            ok = (ev.community_id, ev.month) in months.certified and months.certified[
                (ev.community_id, ev.month)][0] is ev
            points = sum(a.points for a in awards)
            detail = "" if ok else (
                f"认定记录为 {ev.count} 条 {ev.total} 分（摘要 {ev.digest[:12]}…），"
                f"日志中的认定条目为 {len(awards)} 条 {points} 分（摘要 {certification_digest(awards)[:12]}…）")
            checks.append(MonthCheck(ev.community_id, ev.month, ok, ev.count, ev.total, len(awards), points, detail))
        else:
            months.apply(ev)
    for (community, month), pending in sorted(months.pending.items()):
        if pending:
            checks.append(MonthCheck(community, month, False, 0, 0, len(pending),
                                     sum(a.points for a in pending.values()),
                                     f"{len(pending)} 条认定积分之后没有该月的认定记录（MonthCertified）"))
    return sorted(checks, key=lambda c: (c.community_id, c.month))
