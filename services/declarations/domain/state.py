"""The write-side state of the declarations service and the one pure ``evolve`` that builds it.

Every event lives on one stream (``stream_of``); each stream is one aggregate whose state is the
fold of its events: ``evolve(state, event) -> state``. The command side folds the events it just
decided on exactly as a rebuild from the log does, and keeps the result as a snapshot at the
stream's version (``services.declarations.tables``), so loading a subject does not mean reading
its whole history.

Aggregates: a community (its org units), a subject (its registration and its points used per
rule and month, for the monthly cap), a need on the needs board, and one-off records
(an activity's attendance, an enterprise's work report).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from shared.events import Event
from shared.events.declarations import (
    ActivityAttendanceRecorded,
    CatalogueVersionPublished,
    CommunityRegistered,
    DeclarationSubmitted,
    DeductionRecorded,
    NeedCompleted,
    NeedPosted,
    NeedTaken,
    OrgUnitAdded,
    SubjectCategoriesChanged,
    SubjectMovedOut,
    SubjectRegistered,
    WorkReported,
)

UsageKey = tuple[str, str]  # (rule code, YYYY-MM)
EMPTY: Mapping[str, object] = MappingProxyType({})


def month_of(day: dt.date) -> str:
    return day.strftime("%Y-%m")


@dataclass(frozen=True)
class OrgUnit:
    unit_id: str
    community_id: str
    kind: str
    name: str = ""
    parent_id: str | None = None


@dataclass(frozen=True)
class Community:
    community_id: str
    name: str
    county: str
    units: Mapping[str, OrgUnit] = field(default_factory=dict)
    version: int = 0


@dataclass(frozen=True)
class Subject:
    subject_id: str
    community_id: str
    kind: str
    name: str
    categories: tuple[str, ...]
    registered_on: dt.date
    moved_out_on: dt.date | None = None
    gender: str | None = None
    family_id: str | None = None
    contact_id: str | None = None
    units: tuple[str, ...] = ()
    # |points| per (rule, month) (seed: monthly caps). A snapshot may hold only the months a command
    # needs; ``evolve`` adds to what is there, so a loader must load every key a command touches.
    usage: Mapping[UsageKey, int] = field(default_factory=dict)
    version: int = 0

    def active_on(self, day: dt.date) -> bool:
        return self.registered_on <= day and (self.moved_out_on is None or day < self.moved_out_on)

    def used(self, rule_code: str, month: str) -> int:
        return self.usage.get((rule_code, month), 0)


@dataclass(frozen=True)
class Need:
    need_id: str
    community_id: str
    title: str
    rule_code: str
    quantity: int
    status: str  # open, taken, completed
    taken_by: str | None = None  # subject id of the doer
    posted_by: str = ""
    version: int = 0


@dataclass(frozen=True)
class Record:
    """A one-off record (an activity's attendance, a work report): written once, never changed."""

    record_id: str
    version: int = 0


@dataclass(frozen=True)
class Catalogue:
    """The catalogue stream: the versions published so far (their rules live in the event bodies)."""

    published: tuple[CatalogueVersionPublished, ...] = ()
    version: int = 0


Aggregate = Community | Subject | Need | Record | Catalogue
CATALOGUE_STREAM = "catalogue"


def stream_of(event: Event) -> tuple[str, str]:
    """(stream id, Kafka key) of an event: per-subject events by subject id, the rest by community."""
    if isinstance(event, (SubjectRegistered, SubjectCategoriesChanged, SubjectMovedOut, DeclarationSubmitted,
                          DeductionRecorded)):
        return f"subject-{event.subject_id}", event.subject_id
    if isinstance(event, (CommunityRegistered, OrgUnitAdded)):
        return f"community-{event.community_id}", event.community_id
    if isinstance(event, (NeedPosted, NeedTaken, NeedCompleted)):
        return f"need-{event.need_id}", event.community_id
    if isinstance(event, ActivityAttendanceRecorded):
        return f"activity-{event.activity_id}", event.community_id
    if isinstance(event, WorkReported):
        return f"work-report-{event.report_id}", event.community_id
    if isinstance(event, CatalogueVersionPublished):
        return CATALOGUE_STREAM, CATALOGUE_STREAM
    raise TypeError(f"no stream for {type(event).__name__}")


def evolve(state: Aggregate | None, event: Event) -> Aggregate:
    """The aggregate after one more event of its stream (pure; the version counts events)."""
    kind = type(event)
    if kind is DeclarationSubmitted or kind is DeductionRecorded:
        s = _subject(state)
        item = event  # a PointsItem
        key = (item.rule_code, month_of(item.occurred_on))  # type: ignore[attr-defined]
        usage = dict(s.usage)
        usage[key] = usage.get(key, 0) + abs(item.points)  # type: ignore[attr-defined]
        return replace(s, usage=usage, version=s.version + 1)
    if isinstance(event, SubjectRegistered):
        return Subject(event.subject_id, event.community_id, event.kind, event.name, tuple(event.categories),
                       event.registered_on, None, event.gender, event.family_id, event.contact_id,
                       tuple(event.units), {}, _version(state) + 1)
    if isinstance(event, SubjectCategoriesChanged):
        s = _subject(state)
        return replace(s, categories=tuple(event.categories), version=s.version + 1)
    if isinstance(event, SubjectMovedOut):
        s = _subject(state)
        return replace(s, moved_out_on=event.moved_out_on, version=s.version + 1)
    if isinstance(event, CommunityRegistered):
        return Community(event.community_id, event.name, event.county, {}, _version(state) + 1)
    if isinstance(event, OrgUnitAdded):
        c = _community(state)
        unit = OrgUnit(event.unit_id, event.community_id, event.kind, event.name, event.parent_id)
        return replace(c, units={**c.units, unit.unit_id: unit}, version=c.version + 1)
    if isinstance(event, NeedPosted):
        return Need(event.need_id, event.community_id, event.title, event.rule_code, event.quantity, "open", None,
                    event.posted_by, _version(state) + 1)
    if isinstance(event, NeedTaken):
        n = _need(state)
        return replace(n, status="taken", taken_by=event.subject_id, version=n.version + 1)
    if isinstance(event, NeedCompleted):
        n = _need(state)
        return replace(n, status="completed", version=n.version + 1)
    if isinstance(event, (ActivityAttendanceRecorded, WorkReported)):
        record_id = event.activity_id if isinstance(event, ActivityAttendanceRecorded) else event.report_id
        return Record(record_id, _version(state) + 1)
    if isinstance(event, CatalogueVersionPublished):
        cat = state if isinstance(state, Catalogue) else Catalogue()
        return Catalogue((*cat.published, event), cat.version + 1)
    raise TypeError(f"evolve does not know {type(event).__name__}")


def fold(events: list[Event], state: Aggregate | None = None) -> Aggregate | None:
    for ev in events:
        state = evolve(state, ev)
    return state


def _version(state: Aggregate | None) -> int:
    return 0 if state is None else state.version


def _subject(state: Aggregate | None) -> Subject:
    if not isinstance(state, Subject):
        raise TypeError("event for a subject that was never registered")
    return state


def _community(state: Aggregate | None) -> Community:
    if not isinstance(state, Community):
        raise TypeError("event for a community that was never registered")
    return state


def _need(state: Aggregate | None) -> Need:
    if not isinstance(state, Need):
        raise TypeError("event for a need that was never posted")
    return state
