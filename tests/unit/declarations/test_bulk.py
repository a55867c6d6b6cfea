"""Bulk intake decisions: attendance, work reports and the needs board are all or nothing."""

from __future__ import annotations

import datetime as dt

import pytest

from services.declarations.context import load_catalogue
from services.declarations.domain import bulk
from services.declarations.domain.bulk import Line, Need
from services.declarations.domain.intake import Actor, Facts
from services.declarations.domain.roster import Subject
from shared.errors import Rejected
from shared.events.declarations import (
    ActivityAttendanceRecorded,
    DeclarationSubmitted,
    NeedCompleted,
    WorkReported,
)

pytestmark = pytest.mark.unit

CATALOGUE = load_catalogue()
TODAY = dt.date(2026, 11, 30)
DAY = dt.date(2026, 11, 15)
RECORDER = Actor("rec-1", "recorder", "c1")
SITE = Actor("site-c1", "site", "c1")
PEOPLE = {sid: Subject(sid, "c1", "person", sid, cats, dt.date(2026, 10, 1)) for sid, cats in (
    ("p1", ("resident",)), ("p2", ("employed",)), ("p3", ("volunteer",)), ("s1", ("property_staff",)))}


def facts(*ids: str, used: int = 0) -> dict[str, Facts]:
    return {i: Facts(TODAY, True, False, PEOPLE.get(i), used) for i in ids}


def refused(code: str, status: int = 422) -> pytest.RaisesExc[Rejected]:
    return pytest.raises(Rejected, check=lambda e: (e.code, e.status) == (code, status))


def attendance(ids: tuple[str, ...], actor: Actor = RECORDER, used: int = 0) -> list[object]:
    return list(bulk.decide_attendance(
        activity_id="a1", community_id="c1", title="清理绿化带", rule_code="VOLUNTARY_LABOUR", quantity=1,
        occurred_on=DAY, subject_ids=ids, evidence=(), actor=actor, facts=facts(*ids, used=used),
        catalogue=CATALOGUE, item_ids={i: f"item-{i}" for i in ids}))


def test_given_an_organiser_when_recording_attendance_then_one_item_per_subject() -> None:
    head, *items = attendance(("p1", "p2", "p3"))
    assert isinstance(head, ActivityAttendanceRecorded) and head.subject_ids == ("p1", "p2", "p3")
    assert [(i.subject_id, i.points, i.channel, i.source_id) for i in items  # type: ignore[attr-defined]
            ] == [(s, 5, "activity", "a1") for s in ("p1", "p2", "p3")]


def test_given_one_unknown_and_one_capped_subject_then_nobody_is_recorded_and_both_are_named() -> None:
    with refused("some_subjects_refused") as info:
        attendance(("p1", "nobody"))
    assert [r["subject_id"] for r in info.value.detail["refused"]] == ["nobody"]
    with refused("some_subjects_refused") as info:
        attendance(("p1", "p2"), used=40)
    assert {r["error"] for r in info.value.detail["refused"]} == {"monthly_cap_exceeded"}


def test_given_a_declarant_when_recording_attendance_then_403() -> None:
    with refused("forbidden_role", 403):
        attendance(("p1",), Actor("p1", "declarant", "c1", ("p1",)))


def test_given_an_enterprise_report_then_points_by_days_worked_with_employment_weight() -> None:
    lines = [Line("p1", 20), Line("p2", 31)]
    head, *items = bulk.decide_work_report(
        report_id="w1", community_id="c1", enterprise="发制品公司", rule_code="PARK_WORK", occurred_on=DAY,
        lines=lines, evidence=(), actor=SITE, facts=facts("p1", "p2"), catalogue=CATALOGUE,
        item_ids={"p1": "i1", "p2": "i2"})
    assert isinstance(head, WorkReported)
    assert [(i.subject_id, i.points, i.channel) for i in items] == [  # type: ignore[attr-defined]
        ("p1", 40, "enterprise"), ("p2", 62, "enterprise")]


def test_given_a_worker_outside_the_rule_then_the_report_is_refused() -> None:
    with refused("some_subjects_refused"):
        bulk.decide_work_report(
            report_id="w1", community_id="c1", enterprise="发制品公司", rule_code="PARK_WORK", occurred_on=DAY,
            lines=[Line("p1", 1), Line("s1", 1)], evidence=(), actor=SITE, facts=facts("p1", "s1"),
            catalogue=CATALOGUE, item_ids={"p1": "i1", "s1": "i2"})


def test_given_a_need_when_posted_taken_and_completed_then_the_doer_earns_its_points() -> None:
    [posted] = bulk.decide_post_need(need_id="n1", community_id="c1", title="帮李奶奶搬家具", rule_code="HELP_MOVE",
                                     quantity=1, description="", actor=RECORDER, community_known=True, month="2026-11",
                                     catalogue=CATALOGUE)
    assert (posted.need_id, posted.rule_code, posted.posted_by) == ("n1", "HELP_MOVE", "rec-1")  # type: ignore[attr-defined]
    need = Need("n1", "c1", "帮李奶奶搬家具", "HELP_MOVE", 1, "open")
    p3 = Actor("p3", "declarant", "c1", ("p3",))
    [taken] = bulk.decide_take_need(need, "n1", "p3", facts("p3")["p3"], p3)
    assert (taken.subject_id, taken.taken_by) == ("p3", "p3")  # type: ignore[attr-defined]
    need = Need("n1", "c1", "帮李奶奶搬家具", "HELP_MOVE", 1, "taken", "p3")
    done, item = bulk.decide_complete_need(need, "n1", DAY, (), facts("p3")["p3"], RECORDER, CATALOGUE, "i9")
    assert isinstance(done, NeedCompleted) and isinstance(item, DeclarationSubmitted)
    assert (item.subject_id, item.points, item.channel, item.source_id) == ("p3", 10, "needs_board", "n1")


def test_given_a_taken_need_then_it_cannot_be_taken_again_nor_completed_by_the_doer() -> None:
    need = Need("n1", "c1", "搬家", "HELP_MOVE", 1, "taken", "p3")
    with refused("need_not_open", 409):
        bulk.decide_take_need(need, "n1", "p1", facts("p1")["p1"], RECORDER)
    with refused("forbidden_role", 403):
        bulk.decide_complete_need(need, "n1", DAY, (), facts("p3")["p3"], Actor("p3", "declarant", "c1", ("p3",)),
                                  CATALOGUE, "i")
    with refused("not_own_subject", 403):
        bulk.decide_take_need(Need("n1", "c1", "搬家", "HELP_MOVE", 1, "open"), "n1", "p1", facts("p1")["p1"],
                              Actor("p3", "declarant", "c1", ("p3",)))
