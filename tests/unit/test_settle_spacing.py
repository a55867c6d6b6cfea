"""When a projection that puts work off settles: at once when the log is quiet, never more than a
share of its time while records keep coming."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from shared.envelope import Envelope
from shared.projection import SETTLE_EVERY_S, SETTLE_SPACING, Projection, ProjectionRunner
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


async def test_given_a_quick_settle_then_a_batch_that_caught_up_with_the_log_settles_again() -> None:
    runner = runner_settled(ago=1.0, took=0.2)
    assert runner.settle_due(caught_up=True)
    assert not runner.settle_due(caught_up=False)  # behind the log, not overdue


async def test_given_a_settle_that_took_20_s_then_the_next_waits_until_it_is_far_enough_behind() -> None:
    runner = runner_settled(ago=25, took=20)
    assert not runner.settle_due(caught_up=True)  # caught up for a moment, 25 s after a 20 s settle: not yet
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
