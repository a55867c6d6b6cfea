"""Public notice (公示), objections, corrections and finalisation. No I/O here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Container, Sequence
from dataclasses import dataclass

from shared.commands import Rejected
from shared.events.review import (
    Channel,
    MonthFinalised,
    NoticePosted,
    ObjectionDismissed,
    ObjectionRaised,
    ObjectionUpheld,
    PointsCorrected,
    ReviewEvent,
)

from .model import Item, MonthState, next_month


@dataclass(frozen=True, slots=True)
class Objection:
    objection_id: str
    community_id: str
    month: str
    item_id: str
    raised_by: str
    status: str  # open, upheld, dismissed


def post_notice(month: MonthState, channels: Sequence[Channel], *, now: dt.datetime,
                window: dt.timedelta) -> list[NoticePosted]:
    if month.certified_at is None:
        raise Rejected(f"{month.month} 月尚未认定，不能公示", status=409, code="not_certified")
    if not channels:
        raise Rejected("请至少选择一个公示渠道", status=422, code="channel_required")
    # default: the 7-day objection window runs from the first posting, whichever channel it was
    closes = month.window_closes_at or now + window
    return [NoticePosted(community_id=month.community_id, month=month.month, channel=c, posted_at=now,
                         window_closes_at=closes) for c in dict.fromkeys(channels)]


def raise_objection(month: MonthState, item: Item | None, awarded: bool, earlier: Sequence[Objection], *,
                    resident: str, resident_community: str, objection_id: str, reason: str,
                    now: dt.datetime) -> ObjectionRaised:
    if resident_community != month.community_id:
        raise Rejected("只有本社区居民可以对本社区的公示提出异议", status=403, code="forbidden_community")
    if month.window_closes_at is None:
        raise Rejected(f"{month.month} 月的认定结果尚未公示", status=409, code="not_on_notice")
    if now >= month.window_closes_at or month.finalised_at is not None:
        raise Rejected(f"异议期已于 {month.window_closes_at:%Y-%m-%d %H:%M} 结束", status=409,
                       code="window_closed")
    if item is None or not awarded:
        raise Rejected("该条目不在本月公示名单中", status=404, code="item_not_on_notice")
    if any(o.raised_by == resident and o.item_id == item.item_id for o in earlier):
        raise Rejected("您已对该条目提出过异议，每人每条只能提一次", status=409, code="already_objected")
    if not reason.strip():
        raise Rejected("请写明异议理由", status=422, code="reason_required")
    return ObjectionRaised(objection_id=objection_id, community_id=month.community_id, month=month.month,
                           item_id=item.item_id, raised_by=resident, reason=reason)


def _open(objection: Objection | None) -> Objection:
    if objection is None:
        raise Rejected("找不到该异议", status=404, code="objection_not_found")
    if objection.status != "open":
        raise Rejected("该异议已处理，不能重复处理", status=409, code="objection_resolved")
    return objection


def uphold(objection: Objection | None, item: Item, *, open_month: str, delta: int, reason: str,
           correction_id: str) -> list[ReviewEvent]:
    """Upheld: a correction in the open month, never an edit of the certified item."""
    o = _open(objection)
    if not reason.strip():
        raise Rejected("请写明采纳异议的理由", status=422, code="reason_required")
    return [
        ObjectionUpheld(objection_id=o.objection_id, community_id=o.community_id, month=o.month, item_id=o.item_id,
                        correction_id=correction_id, reason=reason),
        _correction(item, open_month=open_month, delta=delta, reason=reason, correction_id=correction_id,
                    objection_id=o.objection_id),
    ]


def dismiss(objection: Objection | None, *, reason: str) -> ObjectionDismissed:
    o = _open(objection)
    if not reason.strip():
        raise Rejected("驳回异议须写明理由", status=422, code="reason_required")
    return ObjectionDismissed(objection_id=o.objection_id, community_id=o.community_id, month=o.month,
                              item_id=o.item_id, reason=reason)


def correct(item: Item | None, item_month: MonthState, *, open_month: str, delta: int, reason: str,
            correction_id: str) -> PointsCorrected:
    """A supervisor's correction for a late or wrong item of a certified month."""
    if item is None:
        raise Rejected("找不到要更正的条目", status=404, code="item_not_found")
    if item_month.certified_at is None:
        raise Rejected(f"{item.month} 月尚未认定，请直接审核该条目，无需更正", status=409, code="not_certified")
    if not reason.strip():
        raise Rejected("请写明更正理由", status=422, code="reason_required")
    return _correction(item, open_month=open_month, delta=delta, reason=reason, correction_id=correction_id)


def _correction(item: Item, *, open_month: str, delta: int, reason: str, correction_id: str,
                objection_id: str | None = None) -> PointsCorrected:
    if delta == 0:
        raise Rejected("更正分值不能为 0", status=422, code="zero_delta")
    return PointsCorrected(correction_id=correction_id, community_id=item.community_id, month=open_month,
                           item_id=item.item_id, item_month=item.month, subject_id=item.subject_id,
                           category=item.category, dimension=item.dimension, rule_code=item.rule_code,
                           delta=delta, reason=reason, objection_id=objection_id)


def finalise(month: MonthState, objections: Sequence[Objection], *, now: dt.datetime) -> MonthFinalised:
    if month.finalised_at is not None:
        raise Rejected(f"{month.month} 月已是最终结果", status=409, code="already_final")
    if month.window_closes_at is None:
        raise Rejected(f"{month.month} 月的认定结果尚未公示", status=409, code="not_on_notice")
    if now < month.window_closes_at:
        raise Rejected(f"异议期到 {month.window_closes_at:%Y-%m-%d %H:%M} 才结束", status=409, code="window_open")
    open_ = [o.objection_id for o in objections if o.status == "open"]
    if open_:
        raise Rejected(f"还有 {len(open_)} 条异议未处理", status=409, code="objections_open")
    return MonthFinalised(community_id=month.community_id, month=month.month, finalised_at=now,
                          objections_upheld=sum(o.status == "upheld" for o in objections),
                          objections_dismissed=sum(o.status == "dismissed" for o in objections))


def landing_month(certified: Container[str], today_month: str) -> str:
    """The month a correction lands in: the current month, or the next open one if it is certified."""
    month = today_month
    while month in certified:
        month = next_month(month)
    return month
