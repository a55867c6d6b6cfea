"""Verification as items arrive: a recorder verifies, returns or rejects; a supervisor may overrule.

An item whose month was certified before review saw it is carried into the next open month
(``ItemCarriedOver``) and decided there: the recorder's look is never refused into limbo.
Default rule: nobody verifies or overrules an item they declared or recorded; a community with
few staff may allow it (``REVIEW_SELF_VERIFICATION_COMMUNITIES``).
"""

from __future__ import annotations

from dataclasses import replace

from shared.errors import Rejected
from shared.events.review import (
    ItemCarriedOver,
    ItemRejected,
    ItemReturned,
    ItemVerified,
    ReviewEvent,
    VerificationOverruled,
)
from shared.vocabulary import ITEM_STATUSES

from .certification import next_open_month
from .commands import Actor, DecideItem, OverruleItem, Rules
from .evolve import ReviewState
from .model import Item


def item_for(state: ReviewState, item_id: str, actor: Actor, rules: Rules) -> Item:
    it = state.items.get(item_id)
    if it is None:
        raise Rejected("找不到该条目（可能尚未同步到审核服务，请稍后再试）", status=404, code="item_not_found")
    if actor.community not in ("*", it.community_id):
        raise Rejected("无权操作其他社区的数据", status=403, code="forbidden_community")
    if not rules.self_verification and it.by(actor.sub):
        raise Rejected("不能审核自己申报或录入的条目，请由其他记录员或监督员审核", status=403, code="own_item")
    return it


def _carry_if_late(it: Item, state: ReviewState) -> tuple[Item, list[ReviewEvent]]:
    """A waiting item of a certified month moves to the next open month first."""
    if state.month(it.month).certified_at is None:
        return it, []
    if it.status != "submitted":
        raise Rejected(f"{it.month} 月已认定，该条目已有结论；如需改变，请由监督员作更正", status=409,
                       code="month_certified")
    to = next_open_month(state, it.month)
    carry = ItemCarriedOver(item_id=it.item_id, community_id=it.community_id, month=it.month, to_month=to,
                            reason=f"{it.month} 月认定时审核服务尚未收到该条目，转入 {to} 月审核")
    return replace(it, month=to, carried_from=it.month), [carry]


def decide(cmd: DecideItem, state: ReviewState, rules: Rules) -> list[ReviewEvent]:
    """A recorder's first look, or a second look at an item the declarant has fixed after a return."""
    it, carried = _carry_if_late(item_for(state, cmd.item_id, cmd.actor, rules), state)
    if it.status in ("verified", "rejected"):
        raise Rejected(f"该条目已是“{ITEM_STATUSES[it.status]}”；如需改变，请由监督员改判", status=409,
                       code="already_decided")
    base = {"item_id": it.item_id, "community_id": it.community_id, "month": it.month}
    if cmd.decision == "verified":
        return [*carried, ItemVerified(**base)]
    if not cmd.note.strip():
        field = "需要修改的内容" if cmd.decision == "returned" else "驳回理由"
        raise Rejected(f"请填写{field}", status=422, code="reason_required")
    if cmd.decision == "returned":
        return [*carried, ItemReturned(**base, to_fix=cmd.note)]
    return [*carried, ItemRejected(**base, reason=cmd.note)]


def overrule(cmd: OverruleItem, state: ReviewState, rules: Rules) -> list[ReviewEvent]:
    """A supervisor (监督员) replaces the recorder's decision; the earlier event stays in the log."""
    it = item_for(state, cmd.item_id, cmd.actor, rules)
    if state.month(it.month).certified_at is not None:
        # seed rule: a certified month is not edited; late or wrong items go through a correction
        raise Rejected(f"{it.month} 月已认定，不能再改判；迟到或有误的条目请由监督员更正", status=409,
                       code="month_certified")
    if it.status == "submitted":
        raise Rejected("记录员尚未审核该条目，无可改判", status=409, code="nothing_to_overrule")
    if it.status == cmd.decision:
        raise Rejected(f"该条目已是“{ITEM_STATUSES[cmd.decision]}”", status=409, code="same_decision")
    if not cmd.reason.strip():
        raise Rejected("请填写改判理由", status=422, code="reason_required")
    return [VerificationOverruled(item_id=it.item_id, community_id=it.community_id, month=it.month,
                                  previous=it.status, decision=cmd.decision, reason=cmd.reason)]


def carry_late_items(state: ReviewState) -> list[ReviewEvent]:
    """Every item still waiting in a certified month goes to the next open month (no refusal: a policy)."""
    out: list[ReviewEvent] = []
    for it in sorted(state.items.values(), key=lambda i: i.item_id):
        if it.status == "submitted" and state.month(it.month).certified_at is not None:
            out += _carry_if_late(it, state)[1]
    return out
