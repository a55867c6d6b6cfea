"""Properties of the pure command side: for any sequence of commands, the state the command side
decided on is the fold of the events it emitted, and no monthly cap is ever exceeded."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.declarations.context import load_catalogue
from services.declarations.domain.commands import ChangeCategories, Command, Declare, Deduct, MoveOut
from services.declarations.domain.decide import State, decide
from services.declarations.domain.intake import Actor, ItemRequest
from services.declarations.domain.state import Aggregate, Community, Subject, evolve, fold, stream_of
from shared.errors import Rejected
from shared.events import Event
from shared.events.declarations import CommunityRegistered, PointsItem, SubjectRegistered

pytestmark = pytest.mark.unit

CATALOGUE = load_catalogue()
TODAY = dt.date(2026, 11, 30)
RECORDER = Actor("rec-1", "recorder", "c1")
PEOPLE = ("p1", "p2", "p3")
RULES = ("HELP_MOVE", "LAW_STUDY", "COMMUNITY_MEETING", "VOLUNTEER_HOURS", "POLICY_TALK", "GOOD_DEED")
DEDUCTIONS = ("LITTERING", "UNCIVIL")
CATEGORIES = ("resident", "volunteer", "party_member", "building_head")
GIVEN: list[Event] = [
    CommunityRegistered(community_id="c1", name="示例社区", county="赫章县"),
    *(SubjectRegistered(subject_id=p, community_id="c1", kind="person", name=p, categories=("resident",),
                        gender="female", registered_on=dt.date(2026, 9, 1)) for p in PEOPLE),
]

days = st.dates(dt.date(2026, 9, 1), dt.date(2026, 12, 5))
items = st.builds(ItemRequest, community_id=st.just("c1"), subject_id=st.sampled_from(PEOPLE),
                  rule_code=st.sampled_from(RULES), quantity=st.integers(1, 12), occurred_on=days)
commands: st.SearchStrategy[Command] = st.one_of(
    st.builds(Declare, actor=st.just(RECORDER), today=st.just(TODAY), item=items, channel=st.just("oral"),
              item_id=st.uuids().map(str)),
    st.builds(Deduct, actor=st.just(RECORDER), today=st.just(TODAY),
              item=items.map(lambda i: ItemRequest(i.community_id, i.subject_id, DEDUCTIONS[i.quantity % 2], 1,
                                                   i.occurred_on, evidence=("photo.jpg",))),
              reason=st.just("乱扔垃圾"), item_id=st.uuids().map(str)),
    st.builds(ChangeCategories, actor=st.just(RECORDER), today=st.just(TODAY), subject_id=st.sampled_from(PEOPLE),
              categories=st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=3, unique=True).map(tuple),
              changed_on=days),
    st.builds(MoveOut, actor=st.just(RECORDER), today=st.just(TODAY), subject_id=st.sampled_from(PEOPLE),
              moved_out_on=st.dates(dt.date(2026, 11, 1), dt.date(2026, 12, 31))),
)


def run(history: list[Event], cmds: list[Command]) -> tuple[dict[str, Aggregate], list[Event]]:
    """The command side in memory: decide each command on the state so far, fold what it emits."""
    streams: dict[str, Aggregate] = {}
    for ev in history:
        stream, _ = stream_of(ev)
        streams[stream] = evolve(streams.get(stream), ev)
    emitted: list[Event] = []
    for c in cmds:
        state = State(CATALOGUE, {a.community_id: a for a in streams.values() if isinstance(a, Community)},
                      {a.subject_id: a for a in streams.values() if isinstance(a, Subject)})
        outcome = decide(c, state)
        if isinstance(outcome, Rejected):
            continue
        for ev in outcome:
            stream, _ = stream_of(ev)
            streams[stream] = evolve(streams.get(stream), ev)
        emitted += outcome
    return streams, emitted


@settings(max_examples=150, deadline=None)
@given(st.lists(commands, max_size=60))
def test_folding_the_events_reproduces_the_state_the_command_side_decided_on(cmds: list[Command]) -> None:
    decided, emitted = run(GIVEN, cmds)
    by_stream: dict[str, list[Event]] = defaultdict(list)
    for ev in [*GIVEN, *emitted]:
        by_stream[stream_of(ev)[0]].append(ev)
    assert {s: fold(evs) for s, evs in by_stream.items()} == decided


@settings(max_examples=150, deadline=None)
@given(st.lists(commands, max_size=60))
def test_no_monthly_cap_is_ever_exceeded_and_every_item_was_active_and_in_the_past(cmds: list[Command]) -> None:
    _, emitted = run(GIVEN, cmds)
    used: dict[tuple[str, str, str], int] = defaultdict(int)
    for ev in emitted:
        if isinstance(ev, PointsItem):
            assert ev.occurred_on <= TODAY
            used[(ev.subject_id, ev.rule_code, ev.occurred_on.strftime("%Y-%m"))] += abs(ev.points)
    for (_, code, month), total in used.items():
        rule = CATALOGUE.rule(code, month)
        assert rule is not None
        assert rule.monthly_cap is None or total <= rule.monthly_cap


def test_given_a_cap_nearly_used_when_two_items_are_decided_in_turn_then_the_second_sees_the_first() -> None:
    item = ItemRequest("c1", "p1", "HELP_MOVE", 1, dt.date(2026, 11, 2))
    five = [Declare(RECORDER, TODAY, item, "oral", f"i-{n}") for n in range(5)]
    _, emitted = run(GIVEN, [*five, Declare(RECORDER, TODAY, item, "oral", "i-6"),
                             Declare(RECORDER, TODAY, item, "oral", "i-7")])
    assert [e.item_id for e in emitted if isinstance(e, PointsItem)] == [*(f"i-{n}" for n in range(5)), "i-6"]
