"""Events owned by the declarations service: roster, rule catalogue, declarations, deductions."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

from shared.events import Event, event


class DeclarationsEvent(Event):
    SERVICE: ClassVar[str] = "declarations"


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
    channel: str  # app, wechat, qq, official_account, oral, activity, needs_board, enterprise
    occurred_on: dt.date
    description: str = ""
    evidence: tuple[str, ...] = ()
    entered_by: str  # the actor who typed it in (a recorder for oral items)
    declared_by: str  # the subject (or family contact) it was declared by, or the recorder


@event
class DeclarationSubmitted(PointsItem):
    """A points item entered through any channel (加分 or, by rule, a negative item)."""


@event
class DeductionRecorded(PointsItem):
    """A deduction (减分) entered by a recorder or supervisor; points < 0."""

    reason: str
