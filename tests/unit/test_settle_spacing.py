"""When a projection that puts work off settles: at once when the log is quiet, never more than a
share of its time while records keep coming; what it puts off once more is asked for again, and
insisted on when the log stays quiet or a catch-up ends."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from shared import recent
from shared.envelope import Envelope
from shared.projection import QUIET_PUT_OFFS, SETTLE_EVERY_S, SETTLE_SPACING, Projection, ProjectionRunner
from shared.settings import Settings

pytestmark = pytest.mark.unit


class PutsOff(Projection):
    name = "puts_off"
    topics = ()
    settles = True

    async def apply(self, conn: object, envelopes: Sequence[Envelope]) -> None:  # type: ignore[override]
        return None


def runner_settled(ago: float, took: float) -> ProjectionRunner:
    runner = ProjectionRunner(None, PutsOff(), Settings())  # type: ignore[arg-type]
    runner._settled_at = asyncio.get_running_loop().time() - ago
    runner._settle_took = took
    return runner


async def test_given_a_batch_that_caught_up_with_a_busy_log_then_the_runner_waits_for_it_to_go_quiet() -> None:
    runner = runner_settled(ago=1.0, took=0.2)
    assert not runner.settle_due(caught_up=True)  # the end of the log as last fetched: a burst may go on
    assert not runner.settle_due(caught_up=False)  # behind the log, not overdue
    assert runner.settle_due(caught_up=True, fetched=False)  # a fetch brought nothing: quiet


async def test_given_a_settle_that_took_20_s_then_the_next_waits_until_it_is_far_enough_behind() -> None:
    runner = runner_settled(ago=35, took=20)
    assert not runner.settle_due(caught_up=True)  # overdue by SETTLE_EVERY_S, but 35 s after a 20 s settle: not yet
    assert not runner.settle_due(caught_up=False)
    runner = runner_settled(ago=SETTLE_SPACING * 20 + 1, took=20)
    assert runner.settle_due(caught_up=True)
    assert runner.settle_due(caught_up=False)


async def test_given_quick_settles_then_a_busy_runner_still_settles_every_30_s() -> None:
    assert not runner_settled(ago=SETTLE_EVERY_S - 1, took=0.1).settle_due(caught_up=False)
    assert runner_settled(ago=SETTLE_EVERY_S + 1, took=0.1).settle_due(caught_up=False)


async def test_given_a_fetch_that_brought_nothing_when_caught_up_then_the_quiet_log_settles_at_once() -> None:
    assert runner_settled(ago=1.0, took=20).settle_due(caught_up=True, fetched=False)


async def test_given_a_fetch_that_brought_nothing_while_still_behind_then_it_settles_only_when_overdue() -> None:
    # a fetcher slow on a saturated machine returns nothing while 100,000 records are still to be read
    assert not runner_settled(ago=25, took=20).settle_due(caught_up=False, fetched=False)
    assert runner_settled(ago=SETTLE_SPACING * 20 + 1, took=20).settle_due(caught_up=False, fetched=False)


class PutsOffWhileItCan(PutsOff):
    """Puts its settle off whenever the runner says more may be coming; says how it was asked."""

    def __init__(self) -> None:
        self.asked: list[bool] = []

    async def settle(self, conn: object, *, more_coming: bool) -> bool:  # type: ignore[override]
        self.asked.append(more_coming)
        return not more_coming


def runner_of(projection: PutsOffWhileItCan, monkeypatch: pytest.MonkeyPatch) -> ProjectionRunner:
    runner = ProjectionRunner(None, projection, Settings())  # type: ignore[arg-type]

    async def commit_once(prepared: Any, dead_letter: bool, settle: bool = False, more_coming: bool = False
                          ) -> tuple[recent.Fresh, list[Any], bool]:
        settled = settle and await projection.settle(None, more_coming=more_coming)
        return recent.Fresh(), [], settled

    monkeypatch.setattr(runner, "_commit_once", commit_once)
    return runner


async def test_given_a_settle_put_off_with_a_batch_then_the_runner_asks_again(monkeypatch: pytest.MonkeyPatch) -> None:
    projection = PutsOffWhileItCan()
    runner = runner_of(projection, monkeypatch)
    # when a batch that caught up with the log settles and the projection puts it off
    await runner.commit(([], [], {}), settle=True, more_coming=True)
    # then it is still owed, but not overdue: a batch behind the log does not ask again at once
    assert projection.asked == [True] and runner._unsettled
    assert not runner.settle_due(caught_up=False)
    # and the next quiet fetch asks again
    await runner.settle_now(quiet=True)
    assert projection.asked == [True, True] and runner._unsettled


async def test_given_a_log_that_stays_quiet_then_a_put_off_settle_is_insisted_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    projection = PutsOffWhileItCan()
    runner = runner_of(projection, monkeypatch)
    # when fetch after fetch brings nothing
    for _ in range(QUIET_PUT_OFFS + 1):
        await runner.settle_now(quiet=True)
    # then it may put the settle off QUIET_PUT_OFFS times, and the next time it must settle
    assert projection.asked == [True] * QUIET_PUT_OFFS + [False]
    assert not runner._unsettled
    # and when the log goes quiet again after something new, it may put it off again
    runner._unsettled = True
    await runner.settle_now(quiet=True)
    assert projection.asked[-1] is True


async def test_given_the_end_of_a_catch_up_then_the_settle_is_never_put_off(monkeypatch: pytest.MonkeyPatch) -> None:
    projection = PutsOffWhileItCan()
    runner = runner_of(projection, monkeypatch)
    await runner.settle_now()
    assert projection.asked == [False] and not runner._unsettled
