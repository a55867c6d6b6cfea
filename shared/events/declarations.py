"""Events owned by the declarations service: roster, rule catalogue, declarations, deductions.

Keys on the declarations topic: per-subject events (roster, points items) by subject id,
community-level events (communities, org units, needs, activities, work reports) by community id.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from shared.events import Event, event


class DeclarationsEvent(Event):
    SERVICE: ClassVar[str] = "declarations"


# ---- roster ---------------------------------------------------------------------------------


@event
class CommunityRegistered(DeclarationsEvent):
    """A relocation community (site) joins the county deployment."""

    community_id: str
    name: str
    county: str = ""


@event
class OrgUnitAdded(DeclarationsEvent):
    """Party organisation (joint_committee, general_branch, branch, group) or grid cell
    (building, workshop, volunteer_team) of a community."""

    community_id: str
    unit_id: str
    kind: str
    name: str
    parent_id: str | None = None


@event
class SubjectRegistered(DeclarationsEvent):
    """A points subject (积分主体): a person, a family or an organisation."""

    subject_id: str
    community_id: str
    kind: str  # person, family, organisation
    name: str
    categories: tuple[str, ...]
    gender: str | None = None  # persons: needed for 最美巾帼
    family_id: str | None = None  # persons: the family subject they belong to
    contact_id: str | None = None  # families: the contact person who declares for them
    units: tuple[str, ...] = ()  # org units / grid cells the subject sits in
    registered_on: dt.date


@event
class SubjectCategoriesChanged(DeclarationsEvent):
    """The subject's categories (积分主体 categories) are replaced from ``changed_on``."""

    subject_id: str
    community_id: str
    categories: tuple[str, ...]
    changed_on: dt.date


@event
class SubjectMovedOut(DeclarationsEvent):
    """The subject left the community; its history stays, it earns nothing after ``moved_out_on``."""

    subject_id: str
    community_id: str
    moved_out_on: dt.date
    reason: str = ""


# ---- points items ---------------------------------------------------------------------------


class PointsItem(DeclarationsEvent):
    """Fields every points item carries; review and ranking read these and nothing else.

    ``points`` is already signed (negative for a deduction) and scored with the rule version in
    force in the month the item happened (``rule_version``).
    """

    item_id: str
    community_id: str
    subject_id: str
    category: str  # the subject category the rule was applied under
    rule_code: str
    rule_version: int
    dimension: str
    quantity: int
    points: int
    channel: str  # app, wechat, qq, official_account, oral, activity, needs_board, enterprise, office (deductions)
    occurred_on: dt.date
    description: str = ""
    evidence: tuple[str, ...] = ()
    entered_by: str  # the actor who typed it in (a recorder for oral items)
    declared_by: str  # the subject (or family contact) it was declared by, or the recorder
    rule_title: str = ""  # the rule's Chinese title in that version (for the ledger; added later)
    source_id: str | None = None  # the activity, need or work report the item came from


@event
class DeclarationSubmitted(PointsItem):
    """A points item entered through any channel (加分 or, by rule, a negative item)."""


@event
class DeductionRecorded(PointsItem):
    """A deduction (减分) entered by a recorder or supervisor; points < 0."""

    reason: str


# ---- activities, needs board, enterprise work reports ----------------------------------------


@event
class ActivityAttendanceRecorded(DeclarationsEvent):
    """An organiser's one record for many subjects; one DeclarationSubmitted per subject follows."""

    activity_id: str
    community_id: str
    title: str
    rule_code: str
    occurred_on: dt.date
    subject_ids: tuple[str, ...]
    organiser: str


@event
class NeedPosted(DeclarationsEvent):
    """A community need on the needs board (义务劳动, helping a household)."""

    need_id: str
    community_id: str
    title: str
    rule_code: str
    quantity: int
    description: str = ""
    posted_by: str


@event
class NeedTaken(DeclarationsEvent):
    """A subject took on a need from the needs board; points follow only when it is completed."""

    need_id: str
    community_id: str
    subject_id: str
    taken_by: str


@event
class NeedCompleted(DeclarationsEvent):
    """The need is done; the doer's DeclarationSubmitted (channel needs_board) follows."""

    need_id: str
    community_id: str
    subject_id: str
    item_id: str
    occurred_on: dt.date
    confirmed_by: str


@event
class WorkReported(DeclarationsEvent):
    """An industrial-park enterprise's report of work done by many workers (按劳分配)."""

    report_id: str
    community_id: str
    enterprise: str
    occurred_on: dt.date
    rule_code: str
    subject_ids: tuple[str, ...]
    reported_by: str


# ---- the rule catalogue ---------------------------------------------------------------------


class RuleDefinition(BaseModel):
    """One itemised rule (积分项目) as published in a catalogue version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    dimension: str
    title: str
    categories: tuple[str, ...]
    points_per_unit: int  # positive = 加分, negative = 减分
    unit: str
    monthly_cap: int | None = None  # on |points| per subject, rule and month
    evidence_required: bool = False
    recorded_by: tuple[str, ...]
    weight: Decimal = Decimal(1)  # seed: employment and income rules weigh more
    max_quantity: int = 10


@event
class CatalogueVersionPublished(DeclarationsEvent):
    """A county admin publishes a whole catalogue version; items are scored by the version in force
    in the month they happened (the seed file only seeds version 1). Stream ``catalogue``."""

    version: int
    effective_month: str  # YYYY-MM
    rules: tuple[RuleDefinition, ...]
    published_by: str
    note: str = ""
