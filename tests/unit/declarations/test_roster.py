"""Roster decisions: org units in the four-level structure, subjects of every kind, changes, moving out."""

from __future__ import annotations

import datetime as dt

import pytest

from services.declarations.domain import roster
from services.declarations.domain.roster import OrgUnit, Subject, SubjectSpec
from shared.errors import Rejected
from shared.events.declarations import SubjectCategoriesChanged, SubjectMovedOut

pytestmark = pytest.mark.unit

DAY = dt.date(2026, 10, 1)
UNITS = {u.unit_id: u for u in (OrgUnit("jc", "c1", "joint_committee"), OrgUnit("gb", "c1", "general_branch"),
                                OrgUnit("br", "c1", "branch"), OrgUnit("x-br", "c2", "branch"))}


def refused(code: str, status: int = 422) -> pytest.RaisesExc[Rejected]:
    return pytest.raises(Rejected, check=lambda e: (e.code, e.status) == (code, status))


@pytest.mark.parametrize(("kind", "parent"), [
    ("joint_committee", None), ("general_branch", "jc"), ("branch", "gb"), ("group", "br"),
    ("building", "br"), ("workshop", "br"), ("volunteer_team", "br"),
])
def test_given_the_four_levels_when_adding_a_unit_under_its_parent_then_added(kind: str, parent: str | None) -> None:
    units = {k: v for k, v in UNITS.items() if k != "jc"} if kind == "joint_committee" else UNITS
    [ev] = roster.add_org_unit(True, units, "c1", "new", kind, "新单位", parent)
    assert (ev.kind, ev.parent_id) == (kind, parent)


@pytest.mark.parametrize(("kind", "parent", "code"), [
    ("group", "gb", "bad_unit_parent"), ("branch", None, "bad_unit_parent"),
    ("building", "x-br", "unknown_parent_unit"),
    ("castle", "br", "unknown_unit_kind"), ("branch", "nope", "unknown_parent_unit"),
])
def test_given_a_unit_in_the_wrong_place_then_refused(kind: str, parent: str, code: str) -> None:
    with refused(code):
        roster.add_org_unit(True, UNITS, "c1", "new", kind, "新单位", parent)


def test_given_an_existing_community_when_registered_again_then_409() -> None:
    with refused("community_exists", 409):
        roster.register_community("c1", "社区", "赫章县", exists=True)


def spec(sid: str, kind: str = "person", *cats: str, **over: object) -> SubjectSpec:
    base = {"gender": "female"} if kind == "person" else {}
    return SubjectSpec(sid, kind, f"名{sid}", cats or ("resident",), DAY, **(base | over))  # type: ignore[arg-type]


def test_given_a_family_its_contact_and_a_multi_category_person_then_all_registered_together() -> None:
    specs = [spec("f1", "family", "family", contact_id="p1"),
             spec("p1", "person", "resident", "volunteer", family_id="f1", units=("br",)),
             spec("o1", "organisation", "party_organization"),
             spec("p2", "person", "party_member", "building_head", gender="male")]
    events = roster.register_subjects("c1", True, specs, set(), UNITS, set(), set())
    assert [e.subject_id for e in events] == ["f1", "p1", "o1", "p2"]
    assert events[3].categories == ("party_member", "building_head")


def test_given_bad_rows_then_nothing_is_registered_and_every_bad_row_is_reported() -> None:
    specs = [spec("ok"), spec("p1", "person", "family"), spec("taken"), spec("p3", gender=None),
             spec("o1", "organisation", "resident"), spec("p4", family_id="f-none"), spec("p5", units=("x-br",)),
             spec("dup"), spec("dup"), spec("p6", "person", "wizard")]
    with refused("roster_rows_refused") as info:
        roster.register_subjects("c1", True, specs, {"taken"}, UNITS, set(), set())
    rows = info.value.detail["rows"]
    assert [r["row"] for r in rows] == [2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert all(r["problems"] for r in rows)


def test_given_an_unknown_community_then_no_subject_is_registered() -> None:
    with refused("unknown_community"):
        roster.register_subjects("c9", False, [spec("p1")], set(), UNITS, set(), set())


XU = Subject("p-xu", "c1", "person", "徐科品", ("party_member",), DAY)


def test_given_a_person_when_becoming_a_building_head_too_then_categories_change() -> None:
    [ev] = roster.change_categories(XU, "p-xu", ("party_member", "building_head"), dt.date(2026, 11, 1))
    assert isinstance(ev, SubjectCategoriesChanged) and ev.categories == ("party_member", "building_head")
    with refused("bad_categories"):
        roster.change_categories(XU, "p-xu", ("family",), dt.date(2026, 11, 1))


def test_given_a_subject_when_moving_out_then_it_is_inactive_from_that_day() -> None:
    [ev] = roster.move_out(XU, "p-xu", dt.date(2026, 11, 20), "迁往县城")
    assert isinstance(ev, SubjectMovedOut)
    gone = Subject("p-xu", "c1", "person", "徐科品", ("party_member",), DAY, ev.moved_out_on)
    assert gone.active_on(dt.date(2026, 11, 19)) and not gone.active_on(dt.date(2026, 11, 20))
    with refused("subject_inactive"):
        roster.move_out(gone, "p-xu", dt.date(2026, 11, 21), "")
    with refused("unknown_subject", 404):  # named in the path: not there
        roster.move_out(None, "p-x", dt.date(2026, 11, 21), "")
