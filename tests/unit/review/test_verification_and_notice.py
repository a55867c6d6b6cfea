"""Verification, notice, objections, corrections, finalisation: given events, when a command, then events or refusal."""

from __future__ import annotations

import datetime as dt

import pytest

from services.review.domain import commands as c
from services.review.domain.commands import Rules
from services.review.domain.evolve import evolve
from shared.events.review import (
    ItemCarriedOver,
    ItemRejected,
    ItemReturned,
    ItemVerified,
    MonthCertified,
    NoticePosted,
    ObjectionDismissed,
    ObjectionRaised,
    ObjectionUpheld,
    PointsCorrected,
    VerificationOverruled,
)

from .support import given, item, refused, when

pytestmark = pytest.mark.unit

T = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai
WEEK = dt.timedelta(days=7)
RECORDER = c.Actor("rec-2", "c-01")
SUPERVISOR = c.Actor("sup-1", "c-01")
CERTIFIED = MonthCertified(community_id="c-01", month="2026-11", count=1, total=5, digest="d", signed_by=("sec",),
                           certified_at=T)
POSTED = NoticePosted(community_id="c-01", month="2026-11", channel="bulletin_board", posted_at=T,
                      window_closes_at=T + WEEK)


def look(decision: str, note: str = "", who: c.Actor = RECORDER, n: int = 1) -> c.DecideItem:
    return c.DecideItem(f"i-{n:03d}", decision, note, who)  # type: ignore[arg-type]


def test_a_recorder_verifies_returns_with_what_to_fix_or_rejects_with_a_reason() -> None:
    assert when(given([item(1)]), look("verified")) == [ItemVerified(item_id="i-001", community_id="c-01",
                                                                     month="2026-11")]
    assert when(given([item(1)]), look("returned", "缺少照片")) == [ItemReturned(
        item_id="i-001", community_id="c-01", month="2026-11", to_fix="缺少照片")]
    assert isinstance(when(given([item(1, "returned")]), look("rejected", "重复申报"))[0], ItemRejected)
    assert refused(given([item(1)]), look("returned", " ")).code == "reason_required"
    assert refused(given([item(1, "verified")]), look("rejected", "x")).code == "already_decided"
    assert refused(given([]), look("verified")).code == "item_not_found"
    assert refused(given([item(1)]), look("verified", who=c.Actor("rec-9", "c-02"))).code == "forbidden_community"


def test_nobody_verifies_what_they_declared_or_recorded_unless_the_community_allows_it() -> None:
    mine = given([item(1, by="rec-2")])
    assert refused(mine, look("verified")).code == "own_item"
    assert refused(given([item(1, "rejected", by="sup-1")]), c.OverruleItem("i-001", "verified", "x", SUPERVISOR)
                   ).code == "own_item"
    few_staff = Rules(self_verification=True)
    assert isinstance(when(mine, look("verified"), few_staff)[0], ItemVerified)


def test_an_item_that_arrives_after_its_month_was_certified_is_carried_then_decided() -> None:
    late = given([item(1)], [CERTIFIED])
    carried, verified = when(late, look("verified"))
    assert isinstance(carried, ItemCarriedOver) and (carried.month, carried.to_month) == ("2026-11", "2026-12")
    assert verified == ItemVerified(item_id="i-001", community_id="c-01", month="2026-12")
    state = evolve(evolve(late, carried), verified)
    assert (state.items["i-001"].month, state.items["i-001"].carried_from, state.items["i-001"].status) == (
        "2026-12", "2026-11", "verified")
    carry_only = when(late, c.CarryLateItems("c-01"))
    assert [type(e) for e in carry_only] == [ItemCarriedOver]
    assert when(given([item(1)], [CERTIFIED, *carry_only]), c.CarryLateItems("c-01")) == []  # nothing left
    assert refused(given([item(1, "verified")], [CERTIFIED]), look("rejected", "x")).code == "month_certified"


def test_a_supervisor_overrules_a_decision_with_a_reason() -> None:
    ev = when(given([item(1, "rejected")]), c.OverruleItem("i-001", "verified", "证据充分", SUPERVISOR))
    assert ev == [VerificationOverruled(item_id="i-001", community_id="c-01", month="2026-11", previous="rejected",
                                        decision="verified", reason="证据充分")]
    assert refused(given([item(1)]), c.OverruleItem("i-001", "verified", "x", SUPERVISOR)).code == \
        "nothing_to_overrule"
    assert refused(given([item(1, "verified")]), c.OverruleItem("i-001", "verified", "x", SUPERVISOR)).code == \
        "same_decision"


def test_the_window_runs_from_the_first_posting() -> None:
    first = when(given([], [CERTIFIED]), c.PostNotice("c-01", "2026-11", ("bulletin_board",), T))
    assert first[0].window_closes_at == T + WEEK
    later = when(given([], [CERTIFIED, POSTED]),
                 c.PostNotice("c-01", "2026-11", ("party_wechat_group",), T + dt.timedelta(days=1)))
    assert later[0].window_closes_at == T + WEEK
    assert refused(given(), c.PostNotice("c-01", "2026-11", ("bulletin_board",), T)).code == "not_certified"


def objecting(*, community: str = "c-01", now: dt.datetime = T, resident: str = "r-1") -> c.RaiseObjection:
    return c.RaiseObjection("c-01", "2026-11", "i-001", resident, community, "赵居民", "没有参加", "o-1", now)


def test_objections_once_per_item_per_resident_of_the_community_within_the_window() -> None:
    on_notice = given([item(1, "verified")], [CERTIFIED, POSTED])
    raised = when(on_notice, objecting())
    assert raised == [ObjectionRaised(objection_id="o-1", community_id="c-01", month="2026-11", item_id="i-001",
                                      raised_by="r-1", reason="没有参加", raised_by_name="赵居民")]
    assert refused(given([item(1, "verified")], [CERTIFIED, POSTED, *raised]), objecting()).code == "already_objected"
    assert refused(on_notice, objecting(community="c-02")).code == "forbidden_community"
    closed = refused(on_notice, objecting(now=T + WEEK))
    assert closed.code == "window_closed" and "2026-12-08 10:00" in closed.reason  # Beijing time, not UTC
    assert refused(given([item(1, "verified")], [CERTIFIED]), objecting()).code == "not_on_notice"
    assert refused(given([item(1, "rejected")], [CERTIFIED, POSTED]), objecting()).code == "item_not_on_notice"


def resolving(uphold: bool, reason: str = "核实未参加") -> c.ResolveObjection:
    return c.ResolveObjection("o-1", uphold, -5, reason, "k-1", c.Actor("sec", "c-01"), T + dt.timedelta(days=2))


def test_an_upheld_objection_is_a_correction_in_the_open_month_never_an_edit() -> None:
    raised = ObjectionRaised(objection_id="o-1", community_id="c-01", month="2026-11", item_id="i-001",
                             raised_by="r-1", reason="没有参加")
    open_ = given([item(1, "verified")], [CERTIFIED, POSTED, raised])
    upheld, corrected = when(open_, resolving(True))
    assert isinstance(upheld, ObjectionUpheld) and upheld.correction_id == "k-1"
    assert isinstance(corrected, PointsCorrected)
    assert (corrected.month, corrected.item_month, corrected.delta, corrected.objection_id) == (
        "2026-12", "2026-11", -5, "o-1")
    assert refused(given([item(1, "verified")], [CERTIFIED, POSTED, raised, upheld]), resolving(False)).code == \
        "objection_resolved"
    assert isinstance(when(open_, resolving(False, "有签到"))[0], ObjectionDismissed)
    assert refused(given(), resolving(False)).code == "objection_not_found"


def test_corrections_reference_an_existing_item_of_a_certified_month() -> None:
    [ev] = when(given([item(1, "verified")], [CERTIFIED]), c.CorrectItem("c-01", "i-001", -3, "有误", "k-1", T))
    assert isinstance(ev, PointsCorrected)
    assert (ev.item_id, ev.month, ev.delta, ev.objection_id) == ("i-001", "2026-12", -3, None)
    assert refused(given([], [CERTIFIED]), c.CorrectItem("c-01", "i-009", 3, "x", "k", T)).code == "item_not_found"
    assert refused(given([item(1)]), c.CorrectItem("c-01", "i-001", 3, "x", "k", T)).code == "not_certified"
    assert refused(given([item(1, "verified")], [CERTIFIED]), c.CorrectItem("c-01", "i-001", 0, "x", "k", T)
                   ).code == "zero_delta"


def test_a_month_is_final_once_the_window_has_closed_and_no_objection_is_open() -> None:
    raised = ObjectionRaised(objection_id="o-1", community_id="c-01", month="2026-11", item_id="i-001",
                             raised_by="r-1", reason="没有参加")
    upheld = ObjectionUpheld(objection_id="o-1", community_id="c-01", month="2026-11", item_id="i-001",
                             correction_id="k", reason="x")
    done = given([item(1, "verified")], [CERTIFIED, POSTED, raised, upheld])
    [final] = when(done, c.FinaliseMonth("c-01", "2026-11", T + WEEK))
    assert (final.objections_upheld, final.objections_dismissed) == (1, 0)
    early = refused(done, c.FinaliseMonth("c-01", "2026-11", T + WEEK - dt.timedelta(seconds=1)))
    assert early.code == "window_open" and "2026-12-08 10:00" in early.reason
    assert refused(given([item(1, "verified")], [CERTIFIED, POSTED, raised]),
                   c.FinaliseMonth("c-01", "2026-11", T + WEEK)).code == "objections_open"
    assert refused(given([], [CERTIFIED]), c.FinaliseMonth("c-01", "2026-11", T + WEEK)).code == "not_on_notice"


def test_a_correction_never_takes_back_more_than_the_item_gave_nor_gives_more_than_its_points() -> None:
    def correcting(delta: int, n: int = 1) -> c.CorrectItem:
        return c.CorrectItem("c-01", f"i-{n:03d}", delta, "更正", f"k{delta}", T)

    awarded = given([item(1, "verified", points=20)], [CERTIFIED])
    too_much = refused(awarded, correcting(-100_000))
    assert too_much.code == "correction_out_of_range" and "0 至 20" in too_much.reason
    [half] = when(awarded, correcting(-10))
    assert refused(given([item(1, "verified", points=20)], [CERTIFIED, half]), correcting(-11)).code == \
        "correction_out_of_range"  # 10 were already taken back
    assert refused(awarded, correcting(1)).code == "correction_out_of_range"  # no more than the rule gives
    late = given([item(1, "rejected", points=20)], [CERTIFIED])  # not awarded: a correction may give its points
    assert when(late, correcting(20))[0].delta == 20
    assert refused(late, correcting(-1)).code == "correction_out_of_range"
    deduction = given([item(2, "verified", points=-3)], [CERTIFIED])
    assert when(deduction, correcting(3, n=2))[0].delta == 3  # a deduction is given back, at most in full
    assert refused(deduction, correcting(4, n=2)).code == "correction_out_of_range"
