"""The county simulator, small: every site's month goes all the way to rankings and the counters.

The services and the sites run as processes on the session's Kafka and PostgreSQL, exactly as
``python -m deploy.simulate --small`` runs them on a throw-away stack.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from deploy import credentials
from deploy.simulate.plan import SMALL, Plan, sites
from deploy.simulate.report import final
from deploy.simulate.run import Result, simulate
from deploy.testing import StackHandle

pytestmark = pytest.mark.e2e


async def test_a_small_county_lives_through_its_month_from_every_site_to_rankings_and_counters(
    stack: tuple[str, str], tmp_path: Path,
) -> None:
    # given: a small county, a site per community
    plan = dataclasses.replace(Plan(), **SMALL)
    result = Result(plan)
    # when: its month runs
    await simulate(StackHandle(None, None, *stack, credentials.from_env()), result, tmp_path, partitions=6,
                   sample_s=1.0, verify_chains=True)
    # then: every planned item was taken at its site and reached review, nothing refused
    f = result.figures
    intake = result.phase("intake")
    assert f["refused"] == {} and f["items_accepted"] == f["items"] == intake.notes["in_review"] > 0
    # every item was decided, every community certified by its leading group and ranked, county-wide too
    decided = result.phase("verification").notes
    assert sum(decided.get(d, 0) for d in ("verified", "returned", "rejected")) == f["items"]
    r = f["rankings"]
    assert r["month_certified_records"] == r["communities_ranked"] == plan.communities and r["county_ranked"]
    assert r["last_certified_to_last_ranking_s"] >= 0
    # the counters redeemed; the only refusals are the domain's for a member short of certified points
    # (a returned item is still pending: "pending, not spendable"); every site's chain verifies
    answers = f["redemptions"]["answers"]
    refusals = {"422 balance_insufficient", "422 pending_not_spendable"}
    assert answers.get("201", 0) > sum(answers.get(r, 0) for r in refusals), answers
    assert set(answers) <= {"201", *refusals}, answers
    assert {name: c["ok"] for name, c in f["chains"].items()} == {s.name: True for s in sites(plan.communities)}
    # and the figures the report prints were measured: lag over time, CPU per process
    assert result.watch and len(result.watch.samples) > 1
    assert {"sites", "review", "ranking", "exchange", "simulator"} <= set(f["cpu_total"])
    # PostgreSQL's CPU by the database its backends serve (the small county's shares round to 0.1 s)
    cpu = f["cpu_total"]
    assert {f"postgresql: {g}" for g in ("sites", "review", "ranking", "exchange", "other")} <= set(cpu), cpu
    assert cpu["postgresql: sites"] + cpu["postgresql: review"] > 0, cpu
    assert final(result).renderables
