"""Events owned by the review service (verification, certification, notice, objections).

The review topic is keyed by community id: a community's review history is one ordered stream
(stream ``community-<id>``), so a month's awards always arrive before its ``MonthCertified``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from typing import ClassVar, Literal

from shared.events import Event, event

Decision = Literal["verified", "returned", "rejected"]
Channel = Literal["wechat_official_account", "party_wechat_group", "bulletin_board"]
CHANNELS: tuple[Channel, ...] = ("wechat_official_account", "party_wechat_group", "bulletin_board")


class ReviewEvent(Event):
    SERVICE: ClassVar[str] = "review"


class ItemDecision(ReviewEvent):
    item_id: str
    community_id: str
    month: str  # YYYY-MM, the month the item happened in


@event
class ItemVerified(ItemDecision):
    """A recorder checked the item: it will be certified with its month."""


@event
class ItemReturned(ItemDecision):
    """Sent back to the declarant; ``to_fix`` says what is missing or wrong."""

    to_fix: str


@event
class ItemRejected(ItemDecision):
    """A recorder refused the item for ``reason``: it earns nothing."""

    reason: str


@event
class VerificationOverruled(ItemDecision):
    """A supervisor (监督员) replaces a recorder's decision; the earlier event stays in the log."""

    previous: str  # the status before: verified, returned or rejected
    decision: Decision
    reason: str


@event
class ItemCarriedOver(ItemDecision):
    """An item whose month was certified before review saw it: reviewed in ``to_month`` instead.

    ``month`` is the month it was declared for; later decisions on the item carry ``to_month``.
    Never silently "submitted" for ever: the item ends certified, rejected, or carried explicitly.
    """

    to_month: str
    reason: str


@event
class CertificationSigned(ReviewEvent):
    """One leading-group member signed the month's digest from their own session.

    The month is certified (awards + ``MonthCertified`` in the same append as the signature that
    completes it) once the quorum has signed the same digest; a signature on an older digest
    (the list changed since) no longer counts.
    """

    community_id: str
    month: str
    signer: str  # token subject
    role: str  # secretary or leading_group
    name: str = ""
    digest: str
    signed_at: dt.datetime


@event
class PointsAwarded(ReviewEvent):
    """One per certified item; always followed (same stream, same transaction) by ``MonthCertified``."""

    item_id: str
    community_id: str
    month: str
    subject_id: str
    category: str
    dimension: str
    rule_code: str
    points: int


@event
class MonthCertified(ReviewEvent):
    """The leading group's sign-off closing a community month; follows one award event per item.

    Consumers treat the month as certified only when this and all ``count`` awards are applied.
    """

    community_id: str
    month: str  # YYYY-MM
    count: int
    total: int
    digest: str  # sha256 over the certified items, in item id order
    signed_by: tuple[str, ...]
    certified_at: dt.datetime
    signer_names: tuple[str, ...] = ()  # the signers' names, in signed_by's order (added later: may be empty)


@event
class NoticePosted(ReviewEvent):
    """The certified list went up on one channel (公示); the first posting opens the objection window."""

    community_id: str
    month: str
    channel: Channel
    posted_at: dt.datetime
    window_closes_at: dt.datetime


@event
class ObjectionRaised(ReviewEvent):
    """A resident objects to one certified item during the public-notice window (接受群众监督)."""

    objection_id: str
    community_id: str
    month: str
    item_id: str
    raised_by: str  # the resident (token subject)
    reason: str
    raised_by_name: str = ""  # for the leading group's page (added later: may be empty)


@event
class ObjectionUpheld(ReviewEvent):
    """The leading group agrees; the change itself is the ``PointsCorrected`` that follows."""

    objection_id: str
    community_id: str
    month: str
    item_id: str
    correction_id: str
    reason: str


@event
class ObjectionDismissed(ReviewEvent):
    """The leading group found the objection unfounded: the item stands."""

    objection_id: str
    community_id: str
    month: str
    item_id: str
    reason: str


@event
class PointsCorrected(ReviewEvent):
    """A correction, never an edit: ``delta`` points for the item's subject, counted in ``month``.

    ``month`` is the community's month that was open when the correction was made;
    ``item_month`` is where the original item belongs.
    """

    correction_id: str
    community_id: str
    month: str
    item_id: str
    item_month: str
    subject_id: str
    category: str
    dimension: str
    rule_code: str
    delta: int
    reason: str
    objection_id: str | None = None


@event
class ClockSet(ReviewEvent):
    """A county admin moved the review service's clock (tests and demos; refused in production)."""

    now: dt.datetime | None  # None: back to the real clock
    offset_seconds: float
    reason: str


@event
class MonthFinalised(ReviewEvent):
    """The objection window closed: the community month is final."""

    community_id: str
    month: str
    finalised_at: dt.datetime
    objections_upheld: int
    objections_dismissed: int


def certification_digest(awards: Iterable[PointsAwarded]) -> str:
    """sha256 over the certified items in item id order (code point order, not a DB collation)."""
    h = hashlib.sha256()
    for a in sorted(awards, key=lambda a: a.item_id):
        h.update(f"{a.item_id}\t{a.subject_id}\t{a.category}\t{a.dimension}\t{a.rule_code}\t{a.points}\n".encode())
    return h.hexdigest()


def certification_check(table: str) -> str:
    """SQL: count, total and ``certification_digest`` of the awards of a community ($1) and month ($2)
    that ``table`` holds (columns as ``PointsAwarded``), computed where the rows are ("C": code point
    order). What a consumer compares with the month's ``MonthCertified``."""
    return f"""select count(*) as n, coalesce(sum(points), 0) as total,
       encode(sha256(convert_to(coalesce(string_agg(
           item_id || E'\\t' || subject_id || E'\\t' || category || E'\\t' || dimension || E'\\t' || rule_code
           || E'\\t' || points::text || E'\\n', '' order by item_id collate "C"), ''), 'UTF8')), 'hex') as digest
    from {table} where community_id = $1 and month = $2"""


class CertifiedMonths:
    """The consumer-side rule for certification, for any downstream service.

    Awards are held as pending until their ``MonthCertified`` arrives; the month counts only if
    the count, total and digest of the pending awards match it. A consumer that has read a prefix
    of a certification (the relay publishes in batches) therefore counts none of it.
    """

    def __init__(self) -> None:
        self.pending: dict[tuple[str, str], dict[str, PointsAwarded]] = {}
        self.certified: dict[tuple[str, str], tuple[MonthCertified, tuple[PointsAwarded, ...]]] = {}
        self.mismatched: list[MonthCertified] = []

    def apply(self, ev: Event) -> None:
        if isinstance(ev, PointsAwarded):
            self.pending.setdefault((ev.community_id, ev.month), {})[ev.item_id] = ev
        elif isinstance(ev, MonthCertified):
            key = (ev.community_id, ev.month)
            awards = tuple(self.pending.get(key, {}).values())
            if (len(awards) == ev.count and sum(a.points for a in awards) == ev.total
                    and certification_digest(awards) == ev.digest):
                self.certified[key] = (ev, awards)
                self.pending.pop(key, None)
            else:
                self.mismatched.append(ev)
