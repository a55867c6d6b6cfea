"""Verification, notice, objections, corrections, finalisation: given state, when deciding, then events or refusal."""

from __future__ import annotations

import datetime as dt

import pytest

from services.review.domain import notice, verification
from services.review.domain.model import Item, MonthState
from services.review.domain.notice import Objection
from shared.commands import Rejected
from shared.events.review import (
    ItemRejected,
    ItemReturned,
    ItemVerified,
    ObjectionUpheld,
    PointsCorrected,
    VerificationOverruled,
)

pytestmark = pytest.mark.unit

T = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)
OPEN = MonthState("c-01", "2026-11")
CERTIFIED = MonthState("c-01", "2026-11", certified_at=T)
ON_NOTICE = MonthState("c-01", "2026-11", certified_at=T, window_closes_at=T + dt.timedelta(days=7))
WEEK = dt.timedelta(days=7)


def item(status: str = "submitted") -> Item:
    return Item("i-1", "c-01", "2026-11", "s-1", "resident", "community_building", "R1", 5, "rec-1", "s-1",
                status)  # type: ignore[arg-type]


def code_of(fn, *args, **kwargs) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(Rejected) as exc:
        fn(*args, **kwargs)
    assert exc.value.reason
    return exc.value.code


def test_a_recorder_verifies_returns_with_what_to_fix_or_rejects_with_a_reason() -> None:
    assert isinstance(verification.decide(item(), OPEN, "verified", ""), ItemVerified)
    assert verification.decide(item(), OPEN, "returned", "缺少照片") == ItemReturned(
        item_id="i-1", community_id="c-01", month="2026-11", to_fix="缺少照片")
    assert isinstance(verification.decide(item("returned"), OPEN, "rejected", "重复申报"), ItemRejected)
    assert code_of(verification.decide, item(), OPEN, "returned", " ") == "reason_required"
    assert code_of(verification.decide, item("verified"), OPEN, "rejected", "x") == "already_decided"
    assert code_of(verification.decide, item(), CERTIFIED, "verified", "") == "month_certified"


def test_a_supervisor_overrules_a_decision_with_a_reason() -> None:
    ev = verification.overrule(item("rejected"), OPEN, "verified", "证据充分")
    assert ev == VerificationOverruled(item_id="i-1", community_id="c-01", month="2026-11", previous="rejected",
                                       decision="verified", reason="证据充分")
    assert verification.status_after(ev) == "verified"
    assert code_of(verification.overrule, item(), OPEN, "verified", "x") == "nothing_to_overrule"
    assert code_of(verification.overrule, item("verified"), OPEN, "verified", "x") == "same_decision"


def test_the_window_runs_from_the_first_posting() -> None:
    first = notice.post_notice(CERTIFIED, ["bulletin_board"], now=T, window=WEEK)
    assert first[0].window_closes_at == T + WEEK
    later = notice.post_notice(ON_NOTICE, ["party_wechat_group"], now=T + dt.timedelta(days=1), window=WEEK)
    assert later[0].window_closes_at == T + WEEK
    assert code_of(notice.post_notice, OPEN, ["bulletin_board"], now=T, window=WEEK) == "not_certified"


def objecting(month: MonthState = ON_NOTICE, *, earlier: tuple[Objection, ...] = (), community: str = "c-01",
              now: dt.datetime = T, awarded: bool = True) -> object:
    return notice.raise_objection(month, item("verified"), awarded, earlier, resident="r-1",
                                  resident_community=community, objection_id="o-1", reason="没有参加", now=now)


def test_objections_once_per_item_per_resident_of_the_community_within_the_window() -> None:
    assert objecting().raised_by == "r-1"  # type: ignore[attr-defined]
    mine = Objection("o-0", "c-01", "2026-11", "i-1", "r-1", "dismissed")
    assert code_of(objecting, earlier=(mine,)) == "already_objected"
    assert code_of(objecting, community="c-02") == "forbidden_community"
    assert code_of(objecting, now=T + WEEK) == "window_closed"
    assert code_of(objecting, CERTIFIED) == "not_on_notice"
    assert code_of(objecting, awarded=False) == "item_not_on_notice"


def test_an_upheld_objection_is_a_correction_in_the_open_month_never_an_edit() -> None:
    o = Objection("o-1", "c-01", "2026-11", "i-1", "r-1", "open")
    upheld, corrected = notice.uphold(o, item("verified"), open_month="2026-12", delta=-5, reason="核实未参加",
                                      correction_id="k-1")
    assert isinstance(upheld, ObjectionUpheld) and upheld.correction_id == "k-1"
    assert isinstance(corrected, PointsCorrected)
    assert (corrected.month, corrected.item_month, corrected.delta, corrected.objection_id) == (
        "2026-12", "2026-11", -5, "o-1")
    assert code_of(notice.uphold, Objection("o-1", "c-01", "2026-11", "i-1", "r-1", "upheld"), item(),
                   open_month="2026-12", delta=-5, reason="x", correction_id="k-2") == "objection_resolved"
    assert code_of(notice.dismiss, None, reason="x") == "objection_not_found"


def test_corrections_reference_an_existing_item_of_a_certified_month() -> None:
    ev = notice.correct(item("verified"), CERTIFIED, open_month="2026-12", delta=3, reason="迟到条目",
                        correction_id="k-1")
    assert (ev.item_id, ev.month, ev.delta, ev.objection_id) == ("i-1", "2026-12", 3, None)
    assert code_of(notice.correct, None, CERTIFIED, open_month="2026-12", delta=3, reason="x",
                   correction_id="k") == "item_not_found"
    assert code_of(notice.correct, item(), OPEN, open_month="2026-12", delta=3, reason="x",
                   correction_id="k") == "not_certified"
    assert notice.landing_month({"2026-11", "2026-12"}, "2026-11") == "2027-01"


def test_a_month_is_final_once_the_window_has_closed_and_no_objection_is_open() -> None:
    done = Objection("o-1", "c-01", "2026-11", "i-1", "r-1", "upheld")
    final = notice.finalise(ON_NOTICE, [done], now=T + WEEK)
    assert (final.objections_upheld, final.objections_dismissed) == (1, 0)
    assert code_of(notice.finalise, ON_NOTICE, [], now=T + WEEK - dt.timedelta(seconds=1)) == "window_open"
    assert code_of(notice.finalise, ON_NOTICE, [Objection(
        "o-2", "c-01", "2026-11", "i-1", "r-2", "open")], now=T + WEEK) == "objections_open"
    assert code_of(notice.finalise, CERTIFIED, [], now=T + WEEK) == "not_on_notice"
