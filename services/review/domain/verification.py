"""Verification as items arrive: a recorder verifies, returns or rejects; a supervisor may overrule."""

from __future__ import annotations

from shared.commands import Rejected
from shared.events.review import (
    Decision,
    ItemRejected,
    ItemReturned,
    ItemVerified,
    ReviewEvent,
    VerificationOverruled,
)

from .model import Item, MonthState


def _open_month(item: Item, month: MonthState) -> None:
    if month.certified_at is not None:
        # seed rule: items for a certified month are refused; late items go through a correction
        raise Rejected(f"{item.month} 月已认定，不能再审核该条目；迟到或有误的条目请由监督员更正",
                       status=409, code="month_certified")


def decide(item: Item, month: MonthState, decision: Decision, note: str) -> ReviewEvent:
    """A recorder's first look, or a second look at an item the declarant has fixed after a return."""
    _open_month(item, month)
    if item.status in ("verified", "rejected"):
        raise Rejected(f"该条目已{_ZH[item.status]}；如需改变，请由监督员改判", status=409, code="already_decided")
    base = {"item_id": item.item_id, "community_id": item.community_id, "month": item.month}
    if decision == "verified":
        return ItemVerified(**base)
    if not note.strip():
        field = "需要修改的内容" if decision == "returned" else "驳回理由"
        raise Rejected(f"请填写{field}", status=422, code="reason_required")
    if decision == "returned":
        return ItemReturned(**base, to_fix=note)
    return ItemRejected(**base, reason=note)


def overrule(item: Item, month: MonthState, decision: Decision, reason: str) -> VerificationOverruled:
    """A supervisor (监督员) replaces the recorder's decision; the earlier event stays in the log."""
    _open_month(item, month)
    if item.status == "submitted":
        raise Rejected("记录员尚未审核该条目，无可改判", status=409, code="nothing_to_overrule")
    if item.status == decision:
        raise Rejected(f"该条目已是“{_ZH[decision]}”", status=409, code="same_decision")
    if not reason.strip():
        raise Rejected("请填写改判理由", status=422, code="reason_required")
    return VerificationOverruled(item_id=item.item_id, community_id=item.community_id, month=item.month,
                                 previous=item.status, decision=decision, reason=reason)


_ZH = {"submitted": "待审核", "verified": "审核通过", "returned": "退回修改", "rejected": "驳回"}


def status_after(event: ReviewEvent) -> str:
    """evolve: the item status an event leaves behind."""
    if isinstance(event, ItemVerified):
        return "verified"
    if isinstance(event, ItemReturned):
        return "returned"
    if isinstance(event, ItemRejected):
        return "rejected"
    if isinstance(event, VerificationOverruled):
        return event.decision
    raise ValueError(f"{type(event).__name__} does not change an item's status")
