"""Events owned by the ranking service: rankings, consequences, talks, Ten Most Beautiful.

The ranking topic is keyed by community id (``county`` for county-wide rankings). Ranking and
consequence events are appended by the live ranking projection when a certified month (or a
correction in one) changes a ranking; talks and selections by the service's commands.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from shared.events import Event, event

Consequence = Literal["excellent_eligible", "promotion_priority", "eligibility_lost"]
Talk = Literal["encouragement", "reminder"]
COUNTY = "county"  # the scope (and key) of county-wide rankings


class RankingEvent(Event):
    SERVICE: ClassVar[str] = "ranking"


class RankedEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    subject_id: str
    name: str
    score: int
    rank: int


@event
class RankingChanged(RankingEvent):
    """A ranking (scope = community id or ``county``; category; period) is not what it was.

    ``top`` holds the entries ranked within the top N (ties at N included); ``digest`` covers the
    whole ranking, ranked and not ranked (``services.ranking.domain.ranking.digest``)."""

    community_id: str
    category: str
    period: str  # 2026-11, 2026-Q4 or 2026
    top: tuple[RankedEntry, ...]
    ranked: int
    not_ranked: int
    digest: str
    certified_months: tuple[str, ...]  # the months of the period that counted


@event
class ConsequenceGranted(RankingEvent):
    community_id: str
    subject_id: str
    name: str
    consequence: Consequence
    basis: str  # the period(s) the rule looked at, e.g. 2026 or 2026-Q1..2026-Q4


@event
class ConsequenceWithdrawn(RankingEvent):
    community_id: str
    subject_id: str
    name: str
    consequence: Consequence
    basis: str


@event
class TalkHeld(RankingEvent):
    """A talk (励志谈心室) from the month's list was held."""

    community_id: str
    month: str
    category: str
    subject_id: str
    talk: Talk
    held_by: str
    note: str


@event
class RoleModelSelected(RankingEvent):
    """The leading group selected a nominee for one of the Ten Most Beautiful (十个最美)."""

    community_id: str
    month: str
    award: str
    subject_id: str
    name: str
    selected_by: str
    note: str = ""
