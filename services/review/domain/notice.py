"""Public notice (公示), objections, corrections and finalisation. No I/O here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Container
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.errors import Rejected
from shared.events.review import (
    MonthFinalised,
    NoticePosted,
    ObjectionDismissed,
    ObjectionRaised,
    ObjectionUpheld,
    PointsCorrected,
    ReviewEvent,
)

from .commands import CorrectItem, FinaliseMonth, PostNotice, RaiseObjection, ResolveObjection, Rules
from .model import Item, local_date, local_time, month_of, next_month

if TYPE_CHECKING:
    from .evolve import ReviewState


@dataclass(frozen=True, slots=True)
class Objection:
    objection_id: str
    community_id: str
    month: str
    item_id: str
    raised_by: str
    status: str  # open, upheld, dismissed


def post_notice(cmd: PostNotice, state: ReviewState, rules: Rules) -> list[ReviewEvent]:
    month = state.month(cmd.month)
    if month.certified_at is None:
        raise Rejected(f"{cmd.month} 月尚未认定，不能公示", status=409, code="not_certified")
    if not cmd.channels:
        raise Rejected("请至少选择一个公示渠道", status=422, code="channel_required")
    # default: the 7-day objection window runs from the first posting, whichever channel it was
    closes = month.window_closes_at or cmd.now + rules.objection_window
    return [NoticePosted(community_id=state.community_id, month=cmd.month, channel=c, posted_at=cmd.now,
                         window_closes_at=closes) for c in dict.fromkeys(cmd.channels)]


def raise_objection(cmd: RaiseObjection, state: ReviewState, rules: Rules) -> list[ReviewEvent]:
    month = state.month(cmd.month)
    if cmd.resident_community != state.community_id:
        raise Rejected("只有本社区居民可以对本社区的公示提出异议", status=403, code="forbidden_community")
    if month.window_closes_at is None:
        raise Rejected(f"{cmd.month} 月的认定结果尚未公示", status=409, code="not_on_notice")
    if cmd.now >= month.window_closes_at or month.finalised_at is not None:
        raise Rejected(f"异议期已于 {local_time(month.window_closes_at, rules.tz)} 结束", status=409,
                       code="window_closed")
    item = state.items.get(cmd.item_id)
    # an award is a verified item of a certified month (its month, or the one it was carried into)
    if item is None or item.month != cmd.month or item.status != "verified":
        raise Rejected("该条目不在本月公示名单中", status=404, code="item_not_on_notice")
    if any(o.raised_by == cmd.resident and o.item_id == item.item_id for o in state.objections.values()):
        raise Rejected("您已对该条目提出过异议，每人每条只能提一次", status=409, code="already_objected")
    if not cmd.reason.strip():
        raise Rejected("请写明异议理由", status=422, code="reason_required")
    return [ObjectionRaised(objection_id=cmd.objection_id, community_id=state.community_id, month=cmd.month,
                            item_id=item.item_id, raised_by=cmd.resident, reason=cmd.reason,
                            raised_by_name=cmd.resident_name)]


def _open(objection: Objection | None) -> Objection:
    if objection is None:
        raise Rejected("找不到该异议", status=404, code="objection_not_found")
    if objection.status != "open":
        raise Rejected("该异议已处理，不能重复处理", status=409, code="objection_resolved")
    return objection


def resolve(cmd: ResolveObjection, state: ReviewState, rules: Rules) -> list[ReviewEvent]:
    """Upheld: a correction in the open month, never an edit of the certified item. Or dismissed."""
    o = state.objections.get(cmd.objection_id)
    if o is None or cmd.actor.community not in ("*", o.community_id):
        raise Rejected("找不到该异议", status=404, code="objection_not_found")
    o = _open(o)
    if not cmd.reason.strip():
        raise Rejected("请写明处理理由", status=422, code="reason_required")
    if not cmd.uphold:
        return [ObjectionDismissed(objection_id=o.objection_id, community_id=o.community_id, month=o.month,
                                   item_id=o.item_id, reason=cmd.reason)]
    item = state.items.get(o.item_id)
    if item is None:
        raise Rejected("找不到该异议所指的条目", status=404, code="item_not_found")
    return [
        ObjectionUpheld(objection_id=o.objection_id, community_id=o.community_id, month=o.month, item_id=o.item_id,
                        correction_id=cmd.correction_id, reason=cmd.reason),
        _correction(item, state, open_month=_landing(state, cmd.now, rules), delta=cmd.delta, reason=cmd.reason,
                    correction_id=cmd.correction_id, objection_id=o.objection_id),
    ]


def correct(cmd: CorrectItem, state: ReviewState, rules: Rules) -> list[ReviewEvent]:
    """A supervisor's correction for a late or wrong item of a certified month."""
    item = state.items.get(cmd.item_id)
    if item is None or item.community_id != state.community_id:
        raise Rejected("找不到要更正的条目", status=404, code="item_not_found")
    if state.month(item.month).certified_at is None:
        raise Rejected(f"{item.month} 月尚未认定，请直接审核该条目，无需更正", status=409, code="not_certified")
    if not cmd.reason.strip():
        raise Rejected("请写明更正理由", status=422, code="reason_required")
    return [_correction(item, state, open_month=_landing(state, cmd.now, rules), delta=cmd.delta,
                        reason=cmd.reason, correction_id=cmd.correction_id)]


def _landing(state: ReviewState, now: dt.datetime, rules: Rules) -> str:
    return landing_month(state.certified_months(), month_of(local_date(now, rules.tz)))


def _correction(item: Item, state: ReviewState, *, open_month: str, delta: int, reason: str, correction_id: str,
                objection_id: str | None = None) -> PointsCorrected:
    if delta == 0:
        raise Rejected("更正分值不能为 0", status=422, code="zero_delta")
    # a correction never takes back more than the item gave, nor gives more than its rule's points
    awarded = item.points if item.status == "verified" and state.month(item.month).certified_at else 0
    after = awarded + item.corrected + delta
    low, high = sorted((0, item.points))
    if not low <= after <= high:
        raise Rejected(f"更正后该条目计 {after} 分，超出允许范围（{low} 至 {high} 分）：更正不能扣回多于该条目所得，"
                       f"也不能多于其规则分值", status=422, code="correction_out_of_range", low=low, high=high)
    return PointsCorrected(correction_id=correction_id, community_id=item.community_id, month=open_month,
                           item_id=item.item_id, item_month=item.month, subject_id=item.subject_id,
                           category=item.category, dimension=item.dimension, rule_code=item.rule_code,
                           delta=delta, reason=reason, objection_id=objection_id)


def finalise(cmd: FinaliseMonth, state: ReviewState, rules: Rules) -> list[ReviewEvent]:
    month = state.month(cmd.month)
    if month.finalised_at is not None:
        raise Rejected(f"{cmd.month} 月已是最终结果", status=409, code="already_final")
    if month.window_closes_at is None:
        raise Rejected(f"{cmd.month} 月的认定结果尚未公示", status=409, code="not_on_notice")
    if cmd.now < month.window_closes_at:
        raise Rejected(f"异议期到 {local_time(month.window_closes_at, rules.tz)} 才结束", status=409,
                       code="window_open")
    objections = [o for o in state.objections.values() if o.month == cmd.month]
    open_ = [o.objection_id for o in objections if o.status == "open"]
    if open_:
        raise Rejected(f"还有 {len(open_)} 条异议未处理", status=409, code="objections_open")
    return [MonthFinalised(community_id=state.community_id, month=cmd.month, finalised_at=cmd.now,
                           objections_upheld=sum(o.status == "upheld" for o in objections),
                           objections_dismissed=sum(o.status == "dismissed" for o in objections))]


def landing_month(certified: Container[str], today_month: str) -> str:
    """The month a correction lands in: the current month, or the next open one if it is certified."""
    month = today_month
    while month in certified:
        month = next_month(month)
    return month
