"""Commands of the declarations service: one immutable record each, imperative names.

Every command carries who asks (``actor``) and the county's civil date (``today``); ids of what
it creates are made by the handler and passed in, so a decision never reads a clock or makes an id.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from services.declarations.domain.intake import Actor, ItemRequest
from services.declarations.domain.roster import SubjectSpec
from shared.events.declarations import RuleDefinition


@dataclass(frozen=True)
class Command:
    actor: Actor
    today: dt.date


@dataclass(frozen=True)
class Declare(Command):
    item: ItemRequest
    channel: str
    item_id: str


@dataclass(frozen=True)
class Deduct(Command):
    item: ItemRequest
    reason: str
    item_id: str


@dataclass(frozen=True)
class WorkLine:
    subject_id: str
    quantity: int
    description: str = ""


@dataclass(frozen=True)
class RecordAttendance(Command):
    activity_id: str
    community_id: str
    title: str
    rule_code: str
    quantity: int
    occurred_on: dt.date
    subject_ids: tuple[str, ...]
    evidence: tuple[str, ...]
    item_ids: tuple[str, ...]  # one per subject, same order


@dataclass(frozen=True)
class ReportWork(Command):
    report_id: str
    community_id: str
    enterprise: str
    rule_code: str
    occurred_on: dt.date
    lines: tuple[WorkLine, ...]
    evidence: tuple[str, ...]
    item_ids: tuple[str, ...]  # one per line, same order


@dataclass(frozen=True)
class PostNeed(Command):
    need_id: str
    community_id: str
    title: str
    rule_code: str
    quantity: int
    description: str = ""


@dataclass(frozen=True)
class TakeNeed(Command):
    need_id: str
    subject_id: str


@dataclass(frozen=True)
class CompleteNeed(Command):
    need_id: str
    occurred_on: dt.date
    evidence: tuple[str, ...]
    item_id: str


@dataclass(frozen=True)
class RegisterCommunity(Command):
    community_id: str
    name: str
    county: str


@dataclass(frozen=True)
class AddOrgUnit(Command):
    community_id: str
    unit_id: str
    kind: str
    name: str
    parent_id: str | None


@dataclass(frozen=True)
class RegisterSubjects(Command):
    community_id: str
    specs: tuple[SubjectSpec, ...]
    rows: tuple[int, ...] = ()  # a file's row numbers, one per spec (an import)
    known_problems: tuple[tuple[str, ...], ...] = ()  # what reading the file found, one per spec


@dataclass(frozen=True)
class ChangeCategories(Command):
    subject_id: str
    categories: tuple[str, ...]
    changed_on: dt.date


@dataclass(frozen=True)
class MoveOut(Command):
    subject_id: str
    moved_out_on: dt.date
    reason: str = ""


@dataclass(frozen=True)
class PublishCatalogue(Command):
    effective_month: str
    rules: tuple[RuleDefinition, ...]
    note: str = ""
