"""Events owned by the declarations service: roster, rule catalogue, declarations, deductions."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

from shared.events import Event, event


class DeclarationsEvent(Event):
    SERVICE: ClassVar[str] = "declarations"


@event
class DeclarationSubmitted(DeclarationsEvent):
    """A points item entered through any channel (positive points: 加分)."""

    declaration_id: str
    community_id: str
    subject_id: str
    category: str
    rule_code: str
    rule_version: int
    dimension: str
    quantity: int
    points: int
    channel: str
    occurred_on: dt.date
    description: str = ""
    evidence: tuple[str, ...] = ()
    entered_by: str
    declared_by: str
