"""Monthly certification: each member signs the month's digest; the quorum's last signature certifies it."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from services.review.domain.certification import awards_of
from services.review.domain.commands import Rules, SignMonth
from services.review.domain.model import Signer
from shared.events.review import (
    CertificationSigned,
    CertifiedMonths,
    ItemCarriedOver,
    MonthCertified,
    PointsAwarded,
    certification_digest,
)

from .support import MEMBER, MEMBER2, RULES, SECRETARY, SHANGHAI, given, item, refused, when

pytestmark = pytest.mark.unit

LAST_DAY_MORNING = dt.datetime(2026, 11, 30, 0, 30, tzinfo=SHANGHAI)


def digest(items: list) -> str:  # type: ignore[type-arg]
    return certification_digest(awards_of(items))


def sign(items: list, signer: Signer, now: dt.datetime = LAST_DAY_MORNING,  # type: ignore[type-arg]
         month: str = "2026-11", on: str | None = None) -> SignMonth:
    return SignMonth("c-01", month, on or digest(items), signer, now)


def certified_by(items: list, *signers: Signer, rules: Rules = RULES) -> list:  # type: ignore[type-arg]
    """Each signer signs in turn from their own session; returns the last signature's events."""
    log: list = []  # type: ignore[type-arg]
    for s in signers:
        events = when(given(items, log), sign(items, s), rules)
        log += events
    return events


def test_the_first_signature_alone_certifies_nothing() -> None:
    items = [item(1, "verified")]
    events = when(given(items), sign(items, SECRETARY))
    assert [type(e) for e in events] == [CertificationSigned]
    assert (events[0].signer, events[0].name, events[0].digest) == ("sec", "张书记", digest(items))


def test_the_signature_completing_the_quorum_certifies_in_one_append() -> None:
    items = [item(3, "verified"), item(1, "verified", points=-2), item(2, "rejected"), item(4, "returned")]
    events = certified_by(items, MEMBER, SECRETARY)
    assert [type(e) for e in events] == [CertificationSigned, ItemCarriedOver, PointsAwarded, PointsAwarded,
                                         MonthCertified]
    carried = events[1]
    assert (carried.item_id, carried.month, carried.to_month) == ("i-004", "2026-11", "2026-12")  # no limbo
    assert [e.item_id for e in events[2:4]] == ["i-001", "i-003"]
    closing = events[-1]
    assert (closing.count, closing.total, closing.signed_by, closing.signer_names) == (
        2, 3, ("lg-1", "sec"), ("李委员", "张书记"))
    lines = "i-001\ts-1\tresident\tcommunity_building\tR1\t-2\ni-003\ts-0\tresident\tcommunity_building\tR1\t5\n"
    assert closing.digest == hashlib.sha256(lines.encode()).hexdigest()


def test_the_last_day_in_shanghai_counts_even_when_it_is_still_the_day_before_in_utc() -> None:
    assert LAST_DAY_MORNING.astimezone(dt.UTC).day == 29
    assert certified_by([item(1, "verified")], SECRETARY, MEMBER)[-1].count == 1


def test_refusals() -> None:
    items = [item(1, "verified")]
    state = given(items)
    assert refused(state, sign(items, SECRETARY, now=dt.datetime(2026, 11, 29, 15, 59, tzinfo=dt.UTC))
                   ).code == "too_early"  # 23:59 on the 29th in Shanghai
    assert refused(state, sign(items, Signer("rec-1", "recorder", "c-01"))).code == "not_a_member"
    assert refused(state, sign(items, Signer("lg-9", "leading_group", "c-02"))).code == "forbidden_community"
    assert refused(state, sign(items, SECRETARY, on="0" * 64)).code == "digest_changed"
    waiting = [*items, item(2)]
    assert refused(given(waiting), sign(waiting, SECRETARY)).code == "items_waiting"
    signed = given(items, when(state, sign(items, SECRETARY)))
    assert refused(signed, sign(items, SECRETARY)).code == "already_signed"


def test_a_repeat_after_certification_names_the_time_in_beijing_time() -> None:
    items = [item(1, "verified")]
    log = when(given(items), sign(items, SECRETARY))
    log += when(given(items, log), sign(items, MEMBER))
    got = refused(given(items, log), sign(items, MEMBER2))
    assert got.code == "already_certified" and "2026-11-30 00:30" in got.reason  # not 2026-11-29 16:30 (UTC)


def test_quorum_needs_the_secretary_and_as_many_members_as_the_setting_says() -> None:
    items = [item(1, "verified")]
    assert [type(e) for e in certified_by(items, MEMBER, MEMBER2)] == [CertificationSigned]  # no secretary
    three = Rules(quorum=3)
    assert [type(e) for e in certified_by(items, SECRETARY, MEMBER, rules=three)] == [CertificationSigned]
    assert certified_by(items, SECRETARY, MEMBER, MEMBER2, rules=three)[-1].count == 1


def test_nobody_certifies_their_own_item_so_another_member_must_sign_too() -> None:
    items = [item(1, "verified", by="lg-1")]
    assert [type(e) for e in certified_by(items, SECRETARY, MEMBER)] == [CertificationSigned]
    assert certified_by(items, SECRETARY, MEMBER, MEMBER2)[-1].count == 1


def test_a_signature_on_an_older_list_no_longer_counts() -> None:
    before = [item(1, "verified")]
    after = [item(1, "verified"), item(2, "verified")]
    signed_old = when(given(before), sign(before, SECRETARY))
    state = given(after, signed_old)
    assert [type(e) for e in when(state, sign(after, MEMBER))] == [CertificationSigned]  # the secretary re-signs


def test_an_empty_month_can_be_certified_with_nothing_in_it() -> None:
    closing = certified_by([], SECRETARY, MEMBER)[-1]
    assert (closing.count, closing.total, closing.digest) == (0, 0, hashlib.sha256(b"").hexdigest())


def test_a_consumer_counts_a_month_only_once_all_its_awards_and_the_closing_event_are_in() -> None:
    events = certified_by([item(n, "verified") for n in range(1, 6)], SECRETARY, MEMBER)
    consumer = CertifiedMonths()
    for ev in events[:-1]:
        consumer.apply(ev)
        assert consumer.certified == {}
    consumer.apply(events[-1])
    closing, awards = consumer.certified[("c-01", "2026-11")]
    assert len(awards) == closing.count == 5 and certification_digest(awards) == closing.digest


def test_a_closing_event_without_all_its_awards_is_not_counted() -> None:
    events = certified_by([item(n, "verified") for n in range(1, 6)], SECRETARY, MEMBER)
    consumer = CertifiedMonths()
    for ev in events[2:]:
        consumer.apply(ev)
    assert consumer.certified == {} and consumer.mismatched == [events[-1]]
