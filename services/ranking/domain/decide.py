"""Commands of the ranking service, decided on the state read in the command's transaction. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import Rejected
from shared.events.ranking import RoleModelSelected, TalkHeld
from shared.vocabulary import TALKS, TEN_MOST_BEAUTIFUL


@dataclass(frozen=True)
class RecordTalk:
    community_id: str
    month: str
    subject_id: str
    talk: str
    held_by: str
    note: str


@dataclass(frozen=True)
class SelectRoleModel:
    community_id: str
    month: str
    award: str
    subject_id: str
    selected_by: str
    note: str


@dataclass(frozen=True)
class TalkState:
    due: dict[tuple[str, str], str]  # (subject, talk) -> category, from the month's list
    held: frozenset[tuple[str, str]]  # (subject, talk) already recorded


@dataclass(frozen=True)
class SelectionState:
    nominated: dict[str, str]  # subject id -> name, nominees of the award and month
    selected: frozenset[str]


def record_talk(cmd: RecordTalk, state: TalkState) -> list[TalkHeld]:
    key = (cmd.subject_id, cmd.talk)
    if key not in state.due:
        raise Rejected(f"该主体不在 {cmd.month} 月的{TALKS.get(cmd.talk, cmd.talk)}名单上", status=422,
                       code="not_on_talk_list")
    if key in state.held:
        raise Rejected(f"该主体 {cmd.month} 月的{TALKS[cmd.talk]}已经记录过，不能重复记录", status=409,
                       code="talk_already_recorded")
    return [TalkHeld(community_id=cmd.community_id, month=cmd.month, category=state.due[key],
                     subject_id=cmd.subject_id, talk=cmd.talk, held_by=cmd.held_by, note=cmd.note)]  # type: ignore[arg-type]


def select_role_model(cmd: SelectRoleModel, state: SelectionState) -> list[RoleModelSelected]:
    award = TEN_MOST_BEAUTIFUL.get(cmd.award, cmd.award)
    if cmd.subject_id not in state.nominated:
        raise Rejected(f"该主体未获 {cmd.month} 月“{award}”提名，不能选为最美", status=422, code="not_nominated")
    if cmd.subject_id in state.selected:
        raise Rejected(f"该主体已被选为 {cmd.month} 月“{award}”", status=409, code="already_selected")
    return [RoleModelSelected(community_id=cmd.community_id, month=cmd.month, award=cmd.award,
                              subject_id=cmd.subject_id, name=state.nominated[cmd.subject_id],
                              selected_by=cmd.selected_by, note=cmd.note)]
