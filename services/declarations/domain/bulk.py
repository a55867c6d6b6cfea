"""Bulk intake: activity attendance, the needs board and enterprise work reports.

One command, many subjects, all or nothing: if any subject is refused, nothing is appended and
the refusal lists every refused subject with its reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from services.declarations.domain.catalogue import RuleCatalogue
from services.declarations.domain.intake import STAFF, Actor, Facts, ItemRequest, decide_declaration, require_role
from services.declarations.domain.state import Need
from shared.errors import Rejected, other_community, require_same_community
from shared.events import Event
from shared.events.declarations import (
    ActivityAttendanceRecorded,
    NeedCompleted,
    NeedPosted,
    NeedTaken,
    WorkReported,
)


@dataclass(frozen=True)
class Line:
    subject_id: str
    quantity: int
    description: str = ""


def _many(community_id: str, rule_code: str, occurred_on: dt.date, lines: Sequence[Line], evidence: tuple[str, ...],
          channel: str, actor: Actor, facts: Mapping[str, Facts], catalogue: RuleCatalogue,
          item_ids: Mapping[str, str], source_id: str) -> list[Event]:
    if not lines:
        raise Rejected("名单为空", code="empty_list")
    ids = [line.subject_id for line in lines]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise Rejected(f"名单中有重复的主体：{'、'.join(dupes)}", code="duplicate_subjects")
    items: list[Event] = []
    refused = []
    for line in lines:
        req = ItemRequest(community_id, line.subject_id, rule_code, line.quantity, occurred_on,
                          line.description, evidence)
        try:
            items.append(decide_declaration(req, channel, actor, facts[line.subject_id], catalogue,
                                            item_ids[line.subject_id], source_id=source_id))
        except Rejected as exc:
            if exc.code in ("forbidden_community", "forbidden_role", "unknown_community", "month_certified",
                            "future_date"):
                raise  # not about one subject: the whole record is wrong
            refused.append({"subject_id": line.subject_id, "error": exc.code, "reason": exc.reason})
    if refused:
        raise Rejected(f"{len(refused)} 个主体不符合条件，整条记录未登记：" +
                       "；".join(f"{r['subject_id']}：{r['reason']}" for r in refused),
                       code="some_subjects_refused", refused=refused)
    return items


def decide_attendance(*, activity_id: str, community_id: str, title: str, rule_code: str, quantity: int,
                      occurred_on: dt.date, subject_ids: Sequence[str], evidence: tuple[str, ...], actor: Actor,
                      facts: Mapping[str, Facts], catalogue: RuleCatalogue, item_ids: Mapping[str, str]) -> list[Event]:
    """seed: an organiser records attendance for many subjects at once (组织义务劳动等社区活动)."""
    require_role(actor, STAFF, "登记活动签到")
    lines = [Line(s, quantity, title) for s in subject_ids]
    items = _many(community_id, rule_code, occurred_on, lines, evidence, "activity", actor, facts, catalogue,
                  item_ids, activity_id)
    head = ActivityAttendanceRecorded(activity_id=activity_id, community_id=community_id, title=title,
                                      rule_code=rule_code, occurred_on=occurred_on, subject_ids=tuple(subject_ids),
                                      organiser=actor.sub)
    return [head, *items]


def decide_work_report(*, report_id: str, community_id: str, enterprise: str, rule_code: str, occurred_on: dt.date,
                       lines: Sequence[Line], evidence: tuple[str, ...], actor: Actor, facts: Mapping[str, Facts],
                       catalogue: RuleCatalogue, item_ids: Mapping[str, str]) -> list[Event]:
    """seed: 28 enterprises in the industrial park; jobs earn points (按劳分配)."""
    require_role(actor, ("site", *STAFF), "上报企业用工")
    if not enterprise.strip():
        raise Rejected("须写明企业名称", code="enterprise_required")
    items = _many(community_id, rule_code, occurred_on, lines, evidence, "enterprise", actor, facts, catalogue,
                  item_ids, report_id)
    head = WorkReported(report_id=report_id, community_id=community_id, enterprise=enterprise,
                        occurred_on=occurred_on, rule_code=rule_code,
                        subject_ids=tuple(line.subject_id for line in lines), reported_by=actor.sub)
    return [head, *items]


# ---- the needs board --------------------------------------------------------------------------


def decide_post_need(*, need_id: str, community_id: str, title: str, rule_code: str, quantity: int,
                     description: str, actor: Actor, community_known: bool, month: str,
                     catalogue: RuleCatalogue) -> list[Event]:
    require_role(actor, STAFF, "发布需求")
    require_same_community(actor.community, community_id)
    if not community_known:
        raise Rejected(f"没有登记社区 {community_id}", code="unknown_community")
    rule = catalogue.rule(rule_code, month)
    if rule is None or rule.is_deduction:
        raise Rejected(f"积分目录中没有加分项目 {rule_code}", code="unknown_rule")
    if not 1 <= quantity <= rule.max_quantity:
        raise Rejected(f"数量 {quantity} 不合理（1 至 {rule.max_quantity}）", code="quantity_out_of_range")
    return [NeedPosted(need_id=need_id, community_id=community_id, title=title, rule_code=rule_code,
                       quantity=quantity, description=description, posted_by=actor.sub)]


def _need(need: Need | None, need_id: str, actor: Actor) -> Need:
    if need is None:
        raise Rejected(f"没有需求 {need_id}", status=404, code="unknown_need")
    if actor.community not in ("*", need.community_id):
        raise other_community(need.community_id)
    return need


def decide_take_need(need: Need | None, need_id: str, subject_id: str, facts: Facts, actor: Actor) -> list[Event]:
    n = _need(need, need_id, actor)
    if actor.role == "declarant" and subject_id not in actor.subject_ids:
        raise Rejected("申报人只能为本人（或本家庭）认领需求", status=403, code="not_own_subject")
    require_role(actor, ("declarant", *STAFF), "认领需求")
    if n.status != "open":
        raise Rejected(f"需求“{n.title}”已被认领或已完成", status=409, code="need_not_open")
    s = facts.subject
    if s is None or s.community_id != n.community_id or not s.active_on(facts.today):
        raise Rejected(f"{subject_id} 不是本社区在册主体", code="unknown_subject")
    return [NeedTaken(need_id=n.need_id, community_id=n.community_id, subject_id=subject_id, taken_by=actor.sub)]


def decide_complete_need(need: Need | None, need_id: str, occurred_on: dt.date, evidence: tuple[str, ...],
                         facts: Facts, actor: Actor, catalogue: RuleCatalogue, item_id: str) -> list[Event]:
    """Completion confirmed by staff earns the doer the need's points (channel needs_board)."""
    n = _need(need, need_id, actor)
    require_role(actor, STAFF, "确认需求完成")
    if n.status != "taken" or n.taken_by is None:
        raise Rejected(f"需求“{n.title}”尚未被认领或已完成", status=409, code="need_not_taken")
    req = ItemRequest(n.community_id, n.taken_by, n.rule_code, n.quantity, occurred_on, n.title, evidence)
    item = decide_declaration(req, "needs_board", actor, facts, catalogue, item_id, source_id=n.need_id)
    done = NeedCompleted(need_id=n.need_id, community_id=n.community_id, subject_id=n.taken_by, item_id=item_id,
                         occurred_on=occurred_on, confirmed_by=actor.sub)
    return [done, item]
