"""Pure intake decisions: given the facts, when a command arrives, then an event or a refusal."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.declarations.context import load_catalogue
from services.declarations.domain.intake import (
    Actor,
    Facts,
    ItemRequest,
    decide_declaration,
    decide_deduction,
)
from services.declarations.domain.roster import Subject
from shared.errors import Rejected
from shared.events.declarations import DeclarationSubmitted, DeductionRecorded

pytestmark = pytest.mark.unit

CATALOGUE = load_catalogue()
TODAY = dt.date(2026, 11, 30)
XU = Subject("p-xu", "c1", "person", "徐科品", ("party_member", "building_head"), dt.date(2026, 10, 1))
CLEANER = Subject("p-zhao", "c1", "person", "赵桂兰", ("property_staff",), dt.date(2026, 10, 1))
RECORDER = Actor("rec-1", "recorder", "c1")
SUPERVISOR = Actor("sup-1", "supervisor", "c1")
XU_HIMSELF = Actor("p-xu", "declarant", "c1", ("p-xu",))
SITE = Actor("site-c1", "site", "c1")


def facts(subject: Subject | None = XU, used: int = 0, **over: object) -> Facts:
    return replace(Facts(TODAY, True, False, subject, used), **over)  # type: ignore[arg-type]


def talk(**over: object) -> ItemRequest:
    return replace(ItemRequest("c1", "p-xu", "POLICY_TALK", 2, dt.date(2026, 11, 3), "宣讲搬迁政策"), **over)  # type: ignore[arg-type]


def refused(code: str, status: int = 422) -> pytest.RaisesExc[Rejected]:
    return pytest.raises(Rejected, check=lambda e: (e.code, e.status) == (code, status))


def test_given_a_building_head_when_a_recorder_enters_an_oral_policy_talk_then_it_is_scored() -> None:
    ev = decide_declaration(talk(), "oral", RECORDER, facts(), CATALOGUE, "i-1")
    assert isinstance(ev, DeclarationSubmitted)
    assert (ev.item_id, ev.points, ev.category, ev.dimension, ev.rule_version) == (
        "i-1", 20, "party_member", "political_quality", 1)
    assert (ev.channel, ev.entered_by, ev.declared_by, ev.rule_title) == ("oral", "rec-1", "p-xu", "宣讲搬迁政策")


def test_given_a_subject_holding_several_categories_when_one_is_named_then_it_is_used() -> None:
    ev = decide_declaration(talk(category="building_head"), "app", XU_HIMSELF, facts(), CATALOGUE, "i-2")
    assert ev.category == "building_head" and ev.declared_by == "p-xu" and ev.entered_by == "p-xu"


@pytest.mark.parametrize(("channel", "actor"), [
    ("app", XU_HIMSELF), ("wechat", XU_HIMSELF), ("qq", XU_HIMSELF), ("wechat", RECORDER),
    ("official_account", SITE), ("oral", RECORDER), ("oral", SUPERVISOR),
])
def test_given_each_channel_and_its_roles_then_accepted(channel: str, actor: Actor) -> None:
    assert decide_declaration(talk(), channel, actor, facts(), CATALOGUE, "i").channel == channel


@pytest.mark.parametrize(("channel", "actor", "code"), [
    ("oral", XU_HIMSELF, "forbidden_role"), ("official_account", RECORDER, "forbidden_role"),
    ("oral", SITE, "forbidden_role"), ("app", Actor("clerk", "clerk", "c1"), "forbidden_role"),
])
def test_given_a_channel_not_open_to_the_role_then_403(channel: str, actor: Actor, code: str) -> None:
    with refused(code, 403):
        decide_declaration(talk(), channel, actor, facts(), CATALOGUE, "i")


def test_given_an_unknown_channel_then_refused() -> None:
    with refused("unknown_channel"):
        decide_declaration(talk(), "pigeon", RECORDER, facts(), CATALOGUE, "i")


def test_given_a_declarant_for_someone_else_then_403() -> None:
    with refused("not_own_subject", 403):
        decide_declaration(talk(subject_id="p-zhao"), "app", XU_HIMSELF, facts(CLEANER), CATALOGUE, "i")


def test_given_a_recorder_of_another_community_then_403() -> None:
    with refused("forbidden_community", 403):
        decide_declaration(talk(), "oral", Actor("r", "recorder", "c2"), facts(), CATALOGUE, "i")


def test_given_a_county_role_then_any_community_passes_the_community_check() -> None:
    with refused("forbidden_role", 403):  # …but a county admin may not declare at all
        decide_declaration(talk(), "oral", Actor("a", "county_admin", "*"), facts(), CATALOGUE, "i")


@pytest.mark.parametrize(("request_", "facts_", "code", "status"), [
    (talk(), facts(community_known=False), "unknown_community", 422),
    (talk(), facts(None), "unknown_subject", 422),
    (talk(), facts(replace(XU, community_id="c9")), "subject_not_in_community", 422),
    (talk(occurred_on=dt.date(2026, 12, 1)), facts(), "future_date", 422),
    (talk(occurred_on=dt.date(2026, 9, 30)), facts(), "subject_inactive", 422),
    (talk(), facts(replace(XU, moved_out_on=dt.date(2026, 11, 3))), "subject_inactive", 422),
    (talk(), facts(month_certified=True), "month_certified", 409),
    (talk(rule_code="NOPE"), facts(), "unknown_rule", 422),
    (talk(occurred_on=dt.date(2025, 12, 31)), facts(replace(XU, registered_on=dt.date(2025, 1, 1))),
     "unknown_rule", 422),  # no catalogue version in force before 2026-01
    (talk(rule_code="LITTERING", evidence=("p",)), facts(), "deduction_rule", 422),
    (talk(), facts(CLEANER), "rule_not_for_category", 422),
    (talk(category="resident"), facts(), "category_not_held", 422),
    (talk(quantity=0), facts(), "quantity_out_of_range", 422),
    (talk(quantity=11), facts(), "quantity_out_of_range", 422),
    (talk(rule_code="GOOD_DEED", quantity=1), facts(), "evidence_required", 422),
    (talk(), facts(used=50), "monthly_cap_exceeded", 422),
])
def test_given_a_bad_item_then_refused_with_a_code(request_: ItemRequest, facts_: Facts, code: str,
                                                   status: int) -> None:
    with refused(code, status) as info:
        decide_declaration(request_, "oral", RECORDER, facts_, CATALOGUE, "i")
    assert info.value.reason  # zh-CN, for the person at the desk


def test_given_usage_just_under_the_cap_then_the_item_that_reaches_it_is_accepted() -> None:
    assert decide_declaration(talk(), "oral", RECORDER, facts(used=40), CATALOGUE, "i").points == 20


def test_given_a_recorder_when_deducting_with_evidence_then_negative_points_and_the_reason() -> None:
    req = ItemRequest("c1", "p-zhao", "LITTERING", 2, dt.date(2026, 11, 5), "", ("photo:1",))
    ev = decide_deduction(req, "楼道堆放杂物", RECORDER, facts(CLEANER), CATALOGUE, "d-1")
    assert isinstance(ev, DeductionRecorded)
    assert (ev.points, ev.reason, ev.channel, ev.entered_by, ev.declared_by) == (-10, "楼道堆放杂物", "office",
                                                                                "rec-1", "rec-1")


@pytest.mark.parametrize(("actor", "req", "reason", "code", "status"), [
    (XU_HIMSELF, ItemRequest("c1", "p-xu", "LITTERING", 1, TODAY, "", ("p",)), "x", "forbidden_role", 403),
    (SITE, ItemRequest("c1", "p-xu", "LITTERING", 1, TODAY, "", ("p",)), "x", "forbidden_role", 403),
    (RECORDER, ItemRequest("c1", "p-xu", "LITTERING", 1, TODAY, "", ("p",)), "  ", "reason_required", 422),
    (RECORDER, ItemRequest("c1", "p-xu", "LITTERING", 1, TODAY), "x", "evidence_required", 422),
    (RECORDER, ItemRequest("c1", "p-xu", "POLICY_TALK", 1, TODAY), "x", "not_a_deduction_rule", 422),
])
def test_given_a_bad_deduction_then_refused(actor: Actor, req: ItemRequest, reason: str, code: str,
                                            status: int) -> None:
    with refused(code, status):
        decide_deduction(req, reason, actor, facts(), CATALOGUE, "d")


@given(st.lists(st.integers(min_value=1, max_value=10), min_size=1, max_size=30))
def test_given_any_sequence_of_items_then_the_month_never_exceeds_the_cap(quantities: list[int]) -> None:
    rule = CATALOGUE.rule("HELP_MOVE", "2026-11")
    assert rule is not None and rule.monthly_cap is not None
    used = 0
    for q in quantities:
        try:
            ev = decide_declaration(talk(rule_code="HELP_MOVE", quantity=q), "oral", RECORDER, facts(used=used),
                                    CATALOGUE, "i")
        except Rejected as exc:
            assert exc.code == "monthly_cap_exceeded"
            assert used + rule.score(q) > rule.monthly_cap  # refused only when it would not fit
            continue
        used += ev.points
        assert used <= rule.monthly_cap
