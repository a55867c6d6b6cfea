"""The state review decisions are made on, and the one ``evolve`` that folds events into it.

The command side keeps a snapshot of this state in SQL (``services/review/state.py``), written in
the same transaction as the events by applying ``evolve`` to them; folding the community's stream
from its first event gives the same state (tests/unit/review/test_properties.py). No I/O here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

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
    PointsCorrected,
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


def _status(status: Status) -> Callable[[ReviewState, Any], ReviewState]:
    return lambda state, ev: _item(state, ev.item_id, status=status)


def _overruled(state: ReviewState, ev: VerificationOverruled) -> ReviewState:
    return _item(state, ev.item_id, status=ev.decision)


def _carried(state: ReviewState, ev: ItemCarriedOver) -> ReviewState:
    return _item(state, ev.item_id, status="submitted", month=ev.to_month, carried_from=ev.month)


def _corrected(state: ReviewState, ev: PointsCorrected) -> ReviewState:
    it = state.items.get(ev.item_id)
    return state if it is None else _item(state, ev.item_id, corrected=it.corrected + ev.delta)


def _signed(state: ReviewState, ev: CertificationSigned) -> ReviewState:
    m = state.month(ev.month)
    signer = Signer(ev.signer, ev.role, ev.community_id, ev.name)
    return _month(state, replace(m, signatures=(*m.signatures, Signature(signer, ev.digest, ev.signed_at))))


def _certified(state: ReviewState, ev: MonthCertified) -> ReviewState:
    return _month(state, replace(state.month(ev.month), certified_at=ev.certified_at))


def _posted(state: ReviewState, ev: NoticePosted) -> ReviewState:
    m = state.month(ev.month)
    return _month(state, replace(m, window_opened_at=m.window_opened_at or ev.posted_at,
                                 window_closes_at=ev.window_closes_at,
                                 channels=tuple(dict.fromkeys([*m.channels, ev.channel]))))


def _finalised(state: ReviewState, ev: MonthFinalised) -> ReviewState:
    return _month(state, replace(state.month(ev.month), finalised_at=ev.finalised_at))


def _raised(state: ReviewState, ev: ObjectionRaised) -> ReviewState:
    o = Objection(ev.objection_id, ev.community_id, ev.month, ev.item_id, ev.raised_by, "open")
    return replace(state, objections={**state.objections, o.objection_id: o})


def _resolved(status: str) -> Callable[[ReviewState, Any], ReviewState]:
    def apply(state: ReviewState, ev: ObjectionUpheld | ObjectionDismissed) -> ReviewState:
        found = state.objections.get(ev.objection_id)
        if found is None:
            return state
        return replace(state, objections={**state.objections, found.objection_id: replace(found, status=status)})
    return apply


# exact types (isinstance on pydantic models is slow, and a month's certification folds 100,000 awards);
# awards and clock settings change no decision state
_EVOLVE: dict[type, Callable[[ReviewState, Any], ReviewState]] = {
    ItemVerified: _status("verified"), ItemReturned: _status("returned"), ItemRejected: _status("rejected"),
    VerificationOverruled: _overruled, ItemCarriedOver: _carried, CertificationSigned: _signed,
    MonthCertified: _certified, NoticePosted: _posted, MonthFinalised: _finalised, ObjectionRaised: _raised,
    ObjectionUpheld: _resolved("upheld"), ObjectionDismissed: _resolved("dismissed"), PointsCorrected: _corrected,
}


def evolve(state: ReviewState, event: ReviewEvent) -> ReviewState:
    """The state an event leaves behind."""
    apply = _EVOLVE.get(type(event))
    return state if apply is None else apply(state, event)


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
