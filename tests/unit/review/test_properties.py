"""Properties of decide/evolve over random command sequences (hypothesis).

For any sequence: the state the commands were decided on (evolved event by event) is what a fold
of the whole log gives; a month is certified only by the quorum on one digest; objections only
inside the window; finalisation only after it; no item is left waiting in a certified month.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.review.domain import commands as c
from services.review.domain.certification import awards_of
from services.review.domain.decide import decide
from services.review.domain.evolve import ReviewState, fold
from services.review.domain.model import Item, Signer
from shared.errors import Rejected
from shared.events.review import (
    CertificationSigned,
    ItemCarriedOver,
    ItemDecision,
    MonthCertified,
    MonthFinalised,
    NoticePosted,
    ObjectionRaised,
    PointsAwarded,
    ReviewEvent,
    certification_digest,
)

pytestmark = pytest.mark.unit

START = dt.datetime(2026, 11, 29, 16, 0, tzinfo=dt.UTC)  # midnight of the 30th (the last day) in Shanghai
MONTH = "2026-11"
SIGNERS = [Signer("sec", "secretary", "c-01", "张书记"), Signer("lg-1", "leading_group", "c-01"),
           Signer("lg-2", "leading_group", "c-01"), Signer("rec-2", "recorder", "c-01")]
ACTORS = [c.Actor("rec-2", "c-01"), c.Actor("rec-1", "c-01"), c.Actor("sup-1", "c-01")]
ITEMS = [Item(f"i-{n}", "c-01", MONTH, f"s-{n % 2}", "resident", "community_building", "R1", n + 1,
              by, by) for n, by in enumerate(("rec-1", "rec-1", "lg-1", "rec-2", "rec-1"))]

step = st.tuples(
    st.sampled_from(["decide", "overrule", "sign", "sign", "sign", "sign", "notice", "object", "object",
                     "resolve", "finalise", "carry", "arrive"]),
    st.integers(0, len(ITEMS) - 1), st.sampled_from(["verified", "verified", "returned", "rejected"]),
    st.integers(0, 3), st.sampled_from([True, True, True, False]), st.integers(0, 72))
# a first look at every item (by a supervisor who recorded none of them), then anything in any order
first_looks = st.lists(st.sampled_from(["verified", "verified", "returned", "rejected"]),
                       min_size=len(ITEMS), max_size=len(ITEMS)).map(
    lambda ds: [("decide", i, d, 2, True, 0) for i, d in enumerate(ds)])
# then often some members sign, in any order, before anything else happens
signatures = st.lists(st.integers(0, 3), max_size=4).map(
    lambda who: [*(("sign", 0, "verified", w, True, 1) for w in who), ("notice", 0, "verified", 0, True, 1)])
steps = st.tuples(st.sampled_from([True, True, True, False]), first_looks, signatures,
                  st.lists(step, min_size=1, max_size=40)).map(lambda t: (t[1] + t[2] if t[0] else []) + t[3])


def late_item(n: int) -> Item:
    """An item declarations accepted that review only sees now (maybe after its month was certified)."""
    return Item(f"late-{n}", "c-01", MONTH, "s-0", "resident", "community_building", "R1", 1, "rec-1", "rec-1")


def command(step: tuple[str, int, str, int, bool, int], state: ReviewState, now: dt.datetime,
            raised: list[str], n: int, rules: c.Rules) -> c.Command:
    kind, i, decision, who, flag, _ = step
    item_id = ITEMS[i].item_id
    if kind == "decide":
        if flag and n % 2:  # now and then a look at an item that arrived late
            item_id = next((k for k in sorted(state.items) if k.startswith("late-")), item_id)
        return c.DecideItem(item_id, decision, "理由" if flag else "", ACTORS[who % 3])  # type: ignore[arg-type]
    if kind == "overrule":
        return c.OverruleItem(item_id, decision, "改判理由", ACTORS[2])  # type: ignore[arg-type]
    if kind == "sign":  # a member signs the digest the page shows them (flag: a stale page)
        digest = "0" * 64 if not flag else certification_digest(awards_of(state.items_of(MONTH)))
        return c.SignMonth("c-01", MONTH, digest, SIGNERS[who], now)
    if kind == "notice":
        return c.PostNotice("c-01", MONTH, ("bulletin_board",), now)
    if kind == "object":
        return c.RaiseObjection("c-01", MONTH, item_id, f"r-{who}", "c-01", "", "没见他参加", f"o-{n}", now)
    if kind == "resolve" and raised:
        return c.ResolveObjection(raised[who % len(raised)], flag, -1, "核实", f"k-{n}", c.Actor("sec", "c-01"), now)
    if kind == "finalise":
        return c.FinaliseMonth("c-01", MONTH, now)
    return c.CarryLateItems("c-01")


def run(sequence: list[Any], rules: c.Rules) -> tuple[ReviewState, list[tuple[dt.datetime, ReviewEvent]]]:
    initial = ReviewState("c-01", items={i.item_id: i for i in ITEMS})
    state, now = initial, START
    log: list[tuple[dt.datetime, ReviewEvent]] = []
    raised: list[str] = []
    for n, step in enumerate(sequence):
        now += dt.timedelta(hours=step[5])
        if step[0] == "arrive":  # items come from the declarations topic, not from review's own events
            arrived = late_item(n)
            state = replace(state, items={**state.items, arrived.item_id: arrived})
            initial = replace(initial, items={**initial.items, arrived.item_id: arrived})
            continue
        got = decide(command(step, state, now, raised, n, rules), state, rules)
        if isinstance(got, Rejected):
            assert got.reason and got.status in (403, 404, 409, 422)
            continue
        state = fold(state, got)  # what the command side keeps and decides the next command on
        log += [(now, e) for e in got]
        raised += [e.objection_id for e in got if isinstance(e, ObjectionRaised)]
    # then: folding the whole log from the start gives the state the commands were decided on
    assert fold(initial, [e for _, e in log]) == state
    return state, log


def check_quorum_and_awards(log: list[tuple[dt.datetime, ReviewEvent]], rules: c.Rules) -> None:
    events = [e for _, e in log]
    closings = [k for k, e in enumerate(events) if isinstance(e, MonthCertified)]
    assert len(closings) <= 1
    for k in closings:
        closing = events[k]
        assert isinstance(closing, MonthCertified)
        signed = [e for e in events[:k] if isinstance(e, CertificationSigned) and e.digest == closing.digest]
        subs = {e.signer for e in signed}
        assert "sec" in subs and len(subs) >= rules.quorum and subs == set(closing.signed_by)
        assert all(e.role in ("secretary", "leading_group") for e in signed)
        awards = [e for e in events[:k] if isinstance(e, PointsAwarded) and e.month == closing.month]
        assert (len(awards), sum(a.points for a in awards), certification_digest(awards)) == (
            closing.count, closing.total, closing.digest)
        by = {i.item_id: i for i in ITEMS} | {f"late-{n}": late_item(n) for n in range(60)}
        for a in awards:  # nobody certifies their own item: quorum signers besides its declarant and recorder
            assert len([s for s in subs if not by[a.item_id].by(s)]) >= rules.quorum
        # after the closing event, nothing decides an item in that month again (carrying moves it out first)
        for e in events[k + 1:]:
            if isinstance(e, ItemDecision) and not isinstance(e, ItemCarriedOver):
                assert e.month != closing.month


def check_windows(log: list[tuple[dt.datetime, ReviewEvent]]) -> None:
    notices = [e for _, e in log if isinstance(e, NoticePosted)]
    if not notices:
        assert not any(isinstance(e, ObjectionRaised | MonthFinalised) for _, e in log)
        return
    closes = notices[0].window_closes_at
    assert {n.window_closes_at for n in notices} == {closes}  # the window runs from the first posting
    assert closes == notices[0].posted_at + dt.timedelta(days=7)
    final = next((when for when, e in log if isinstance(e, MonthFinalised)), None)
    for when, e in log:
        if isinstance(e, ObjectionRaised):
            assert when < closes and (final is None or when < final)
    assert final is None or final >= closes


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps, st.sampled_from([2, 3]))
def test_random_command_sequences_keep_every_rule(sequence: list[Any], quorum: int) -> None:
    rules = c.Rules(quorum=quorum)
    state, log = run(sequence, rules)
    check_quorum_and_awards(log, rules)
    check_windows(log)
    # no item in limbo: once the late-item policy has run, every item of a certified month is
    # certified or rejected, or was carried into the next month
    carried = decide(c.CarryLateItems("c-01"), state, rules)
    assert not isinstance(carried, Rejected)
    state = fold(state, carried)
    if state.month(MONTH).certified_at is not None:
        for it in state.items.values():
            if it.month == MONTH:
                assert it.status in ("verified", "rejected"), it
