"""Monthly certification: given items and signers, when certifying, then awards + MonthCertified or a refusal."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from services.review.domain.certification import certify
from services.review.domain.model import Item, MonthState, Signer
from shared.commands import Rejected
from shared.events.review import CertifiedMonths, MonthCertified, PointsAwarded, certification_digest

pytestmark = pytest.mark.unit

TZ = "Asia/Shanghai"
SECRETARY = Signer("sec", "secretary", "c-01")
MEMBER = Signer("lg-1", "leading_group", "c-01")
MEMBER2 = Signer("lg-2", "leading_group", "c-01")
LAST_DAY_MORNING = dt.datetime(2026, 11, 30, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def item(n: int, status: str = "verified", points: int = 5, by: str = "rec-1") -> Item:
    return Item(f"i-{n:03d}", "c-01", "2026-11", f"s-{n % 3}", "resident", "community_building", "R1", points,
                by, by, status)  # type: ignore[arg-type]


def when_certifying(items: list[Item], signers: tuple[Signer, ...] = (SECRETARY, MEMBER), *,
                    now: dt.datetime = LAST_DAY_MORNING, month: MonthState | None = None, quorum: int = 2) -> list:
    return certify(month or MonthState("c-01", "2026-11"), signers, items, now=now, quorum=quorum, tz=TZ)


def refused(code: str, **kwargs: object) -> None:
    items = kwargs.pop("items", [item(1)])
    with pytest.raises(Rejected) as exc:
        when_certifying(items, **kwargs)  # type: ignore[arg-type]
    assert exc.value.code == code, exc.value.reason
    assert exc.value.reason  # a zh-CN reason for the page


def test_verified_items_become_awards_in_item_order_then_the_closing_event() -> None:
    events = when_certifying([item(3), item(1, points=-2), item(2, status="rejected"), item(4, status="returned")])
    expected: list[type] = [PointsAwarded, PointsAwarded, MonthCertified]
    assert [type(e) for e in events] == expected
    assert [e.item_id for e in events[:2]] == ["i-001", "i-003"]
    closing = events[-1]
    assert (closing.count, closing.total, closing.signed_by) == (2, 3, ("lg-1", "sec"))
    lines = "i-001\ts-1\tresident\tcommunity_building\tR1\t-2\ni-003\ts-0\tresident\tcommunity_building\tR1\t5\n"
    assert closing.digest == hashlib.sha256(lines.encode()).hexdigest()


def test_the_last_day_in_shanghai_counts_even_when_it_is_still_the_day_before_in_utc() -> None:
    assert LAST_DAY_MORNING.astimezone(dt.UTC).day == 29
    assert when_certifying([item(1)])[-1].count == 1


def test_refusals() -> None:
    refused("too_early", now=dt.datetime(2026, 11, 29, 15, 59, tzinfo=dt.UTC))  # 23:59 on the 29th in Shanghai
    refused("already_certified", month=MonthState("c-01", "2026-11", certified_at=LAST_DAY_MORNING))
    refused("quorum_not_met", signers=(SECRETARY,))
    refused("quorum_not_met", signers=(MEMBER, MEMBER2))  # no secretary
    refused("quorum_not_met", signers=(SECRETARY, SECRETARY))  # the same person twice is one signer
    refused("quorum_not_met", signers=(SECRETARY, MEMBER), quorum=3)
    refused("not_a_member", signers=(SECRETARY, Signer("rec-1", "recorder", "c-01")))
    refused("forbidden_community", signers=(SECRETARY, Signer("lg-9", "leading_group", "c-02")))
    refused("items_waiting", items=[item(1), item(2, status="submitted")])
    refused("own_item", items=[item(1, by="lg-1")])


def test_an_item_a_signer_recorded_is_certified_once_another_member_signs_too() -> None:
    events = when_certifying([item(1, by="lg-1")], signers=(SECRETARY, MEMBER, MEMBER2))
    assert events[-1].count == 1


def test_an_empty_month_can_be_certified_with_nothing_in_it() -> None:
    closing = when_certifying([])[-1]
    assert (closing.count, closing.total, closing.digest) == (0, 0, hashlib.sha256(b"").hexdigest())


def test_a_consumer_counts_a_month_only_once_all_its_awards_and_the_closing_event_are_in() -> None:
    events = when_certifying([item(n) for n in range(1, 6)])
    consumer = CertifiedMonths()
    for ev in events[:-1]:
        consumer.apply(ev)
        assert consumer.certified == {}
    consumer.apply(events[-1])
    closing, awards = consumer.certified[("c-01", "2026-11")]
    assert len(awards) == closing.count == 5 and certification_digest(awards) == closing.digest


def test_a_closing_event_without_all_its_awards_is_not_counted() -> None:
    events = when_certifying([item(n) for n in range(1, 6)])
    consumer = CertifiedMonths()
    for ev in events[1:]:
        consumer.apply(ev)
    assert consumer.certified == {} and consumer.mismatched == [events[-1]]
