"""The state review decisions are made on, and the one ``evolve`` that folds events into it.

The command side keeps a snapshot of this state in SQL (``services/review/state.py``), written in
the same transaction as the events by applying ``evolve`` to them; folding the community's stream
from its first event gives the same state (tests/unit/review/test_properties.py). No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from shared.events.review import (
    CertificationSigned,
    ItemCarriedOver,
    ItemRejected,
    ItemReturned,
    ItemVerified,
    MonthCertified,
    MonthFinalised,
    NoticePosted,
    ObjectionDismissed,
    ObjectionRaised,
    ObjectionUpheld,
    ReviewEvent,
    VerificationOverruled,
)

from .model import Item, MonthState, Signature, Signer, Status
from .notice import Objection


@dataclass(frozen=True)
class ReviewState:
    """A community's review state, or the part of it a command needs (items and objections it
    looked at; every month of the community)."""

    community_id: str
    items: Mapping[str, Item] = field(default_factory=dict)  # items declarations reported, with review status
    months: Mapping[str, MonthState] = field(default_factory=dict)
    objections: Mapping[str, Objection] = field(default_factory=dict)

    def month(self, month: str) -> MonthState:
        return self.months.get(month) or MonthState(self.community_id, month)

    def items_of(self, month: str) -> list[Item]:
        """Items under review in ``month`` (their own month, or the one they were carried into)."""
        return [i for i in self.items.values() if i.month == month]

    def certified_months(self) -> set[str]:
        return {m.month for m in self.months.values() if m.certified_at is not None}


_STATUS: dict[type, Status] = {ItemVerified: "verified", ItemReturned: "returned", ItemRejected: "rejected"}


def evolve(state: ReviewState, event: ReviewEvent) -> ReviewState:
    """The state an event leaves behind. Awards and corrections change no decision state."""
    if isinstance(event, VerificationOverruled):
        return _item(state, event.item_id, status=event.decision)
    if type(event) in _STATUS:
        return _item(state, event.item_id, status=_STATUS[type(event)])  # type: ignore[attr-defined]
    if isinstance(event, ItemCarriedOver):
        return _item(state, event.item_id, status="submitted", month=event.to_month, carried_from=event.month)
    if isinstance(event, CertificationSigned):
        m = state.month(event.month)
        signer = Signer(event.signer, event.role, event.community_id, event.name)
        return _month(state, replace(m, signatures=(*m.signatures, Signature(signer, event.digest, event.signed_at))))
    if isinstance(event, MonthCertified):
        return _month(state, replace(state.month(event.month), certified_at=event.certified_at))
    if isinstance(event, NoticePosted):
        m = state.month(event.month)
        return _month(state, replace(m, window_opened_at=m.window_opened_at or event.posted_at,
                                     window_closes_at=event.window_closes_at,
                                     channels=tuple(dict.fromkeys([*m.channels, event.channel]))))
    if isinstance(event, MonthFinalised):
        return _month(state, replace(state.month(event.month), finalised_at=event.finalised_at))
    if isinstance(event, ObjectionRaised):
        o = Objection(event.objection_id, event.community_id, event.month, event.item_id, event.raised_by, "open")
        return replace(state, objections={**state.objections, o.objection_id: o})
    if isinstance(event, ObjectionUpheld | ObjectionDismissed):
        found = state.objections.get(event.objection_id)
        if found is None:
            return state
        status = "upheld" if isinstance(event, ObjectionUpheld) else "dismissed"
        return replace(state, objections={**state.objections, found.objection_id: replace(found, status=status)})
    return state


def fold(state: ReviewState, events: Iterable[ReviewEvent]) -> ReviewState:
    for ev in events:
        state = evolve(state, ev)
    return state


def _item(state: ReviewState, item_id: str, **changes: object) -> ReviewState:
    it = state.items.get(item_id)
    if it is None:  # an item this (partial) state did not load: nothing it decides on changes
        return state
    return replace(state, items={**state.items, item_id: replace(it, **changes)})  # type: ignore[arg-type]


def _month(state: ReviewState, m: MonthState) -> ReviewState:
    return replace(state, months={**state.months, m.month: m})
