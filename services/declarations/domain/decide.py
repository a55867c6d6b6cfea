"""``decide(command, state) -> events | Rejected``: every command of the service, one pure function.

``state`` holds what the command needs, loaded by the handler in the command's transaction
(``wants`` says what that is). The events are appended to their streams at the versions the
state was loaded at; a concurrent change there makes the append fail, and the command is
decided again on the new state.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from services.declarations.domain import bulk, catalogue_log, roster
from services.declarations.domain.catalogue import RuleCatalogue
from services.declarations.domain.commands import (
    AddOrgUnit,
    ChangeCategories,
    Command,
    CompleteNeed,
    Declare,
    Deduct,
    MoveOut,
    PostNeed,
    PublishCatalogue,
    RecordAttendance,
    RegisterCommunity,
    RegisterSubjects,
    ReportWork,
    TakeNeed,
)
from services.declarations.domain.intake import Facts, decide_declaration, decide_deduction
from services.declarations.domain.state import Catalogue, Community, Need, Subject, month_of
from shared.errors import Rejected, require_same_community
from shared.events import Event


@dataclass(frozen=True)
class State:
    """What the decisions of one transaction see (a partial view: only what ``wants`` asked for)."""

    catalogue: RuleCatalogue
    communities: Mapping[str, Community] = field(default_factory=dict)
    subjects: Mapping[str, Subject] = field(default_factory=dict)
    needs: Mapping[str, Need] = field(default_factory=dict)
    certified: frozenset[tuple[str, str]] = frozenset()  # (community, month) certified by review
    # community -> {subject id: kind} of everyone registered there (only for registrations)
    rosters: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    published: Catalogue = field(default_factory=Catalogue)
    unit_owners: Mapping[str, str] = field(default_factory=dict)  # unit id -> its community (any community)


@dataclass
class Wants:
    """What to load for a batch of commands (keys; the loader fetches each once)."""

    communities: set[str] = field(default_factory=set)
    subjects: set[str] = field(default_factory=set)
    usage: set[tuple[str, str, str]] = field(default_factory=set)  # (subject, rule, month)
    needs: set[str] = field(default_factory=set)
    certified: set[tuple[str, str]] = field(default_factory=set)
    rosters: set[str] = field(default_factory=set)
    units: bool = False  # the org units of the communities loaded
    unit_ids: set[str] = field(default_factory=set)  # who owns these unit ids, county-wide
    catalogue: bool = False

    def item(self, community_id: str, subject_id: str, rule_code: str, day: dt.date) -> None:
        self.communities.add(community_id)
        self.subjects.add(subject_id)
        self.usage.add((subject_id, rule_code, month_of(day)))
        self.certified.add((community_id, month_of(day)))


def wants(command: Command, state: State, into: Wants) -> None:
    """Add what ``command`` needs, given what is loaded so far (a need names its doer only once loaded)."""
    match command:
        case Declare(item=i) | Deduct(item=i):
            into.item(i.community_id, i.subject_id, i.rule_code, i.occurred_on)
        case RecordAttendance():
            for s in command.subject_ids:
                into.item(command.community_id, s, command.rule_code, command.occurred_on)
        case ReportWork():
            for line in command.lines:
                into.item(command.community_id, line.subject_id, command.rule_code, command.occurred_on)
        case PostNeed():
            into.communities.add(command.community_id)
        case TakeNeed():
            into.needs.add(command.need_id)
            into.subjects.add(command.subject_id)
        case CompleteNeed():
            into.needs.add(command.need_id)
            need = state.needs.get(command.need_id)
            if need is not None and need.taken_by:
                into.item(need.community_id, need.taken_by, need.rule_code, command.occurred_on)
        case RegisterCommunity():
            into.communities.add(command.community_id)
        case AddOrgUnit():
            into.communities.add(command.community_id)
            into.units = True
            into.unit_ids.add(command.unit_id)
        case RegisterSubjects():
            into.communities.add(command.community_id)
            into.units = True
            into.rosters.add(command.community_id)
            into.subjects.update(s.subject_id for s in command.specs)
        case ChangeCategories() | MoveOut():
            into.subjects.add(command.subject_id)
        case PublishCatalogue():
            into.catalogue = True


def facts(state: State, today: dt.date, community_id: str, subject_id: str, rule_code: str,
          day: dt.date) -> Facts:
    subject = state.subjects.get(subject_id)
    month = month_of(day)
    return Facts(today, community_id in state.communities, (community_id, month) in state.certified, subject,
                 subject.used(rule_code, month) if subject else 0)


def decide(command: Command, state: State) -> list[Event] | Rejected:
    try:
        return _DECIDERS[type(command)](command, state)
    except Rejected as refusal:
        return refusal


def _declare(c: Declare, st: State) -> list[Event]:
    i = c.item
    f = facts(st, c.today, i.community_id, i.subject_id, i.rule_code, i.occurred_on)
    return [decide_declaration(i, c.channel, c.actor, f, st.catalogue, c.item_id)]


def _deduct(c: Deduct, st: State) -> list[Event]:
    i = c.item
    f = facts(st, c.today, i.community_id, i.subject_id, i.rule_code, i.occurred_on)
    return [decide_deduction(i, c.reason, c.actor, f, st.catalogue, c.item_id)]


def _attendance(c: RecordAttendance, st: State) -> list[Event]:
    return bulk.decide_attendance(
        activity_id=c.activity_id, community_id=c.community_id, title=c.title, rule_code=c.rule_code,
        quantity=c.quantity, occurred_on=c.occurred_on, subject_ids=c.subject_ids, evidence=c.evidence,
        actor=c.actor, facts={s: facts(st, c.today, c.community_id, s, c.rule_code, c.occurred_on)
                              for s in c.subject_ids},
        catalogue=st.catalogue, item_ids=dict(zip(c.subject_ids, c.item_ids, strict=True)))


def _work(c: ReportWork, st: State) -> list[Event]:
    ids = [line.subject_id for line in c.lines]
    return bulk.decide_work_report(
        report_id=c.report_id, community_id=c.community_id, enterprise=c.enterprise, rule_code=c.rule_code,
        occurred_on=c.occurred_on, lines=[bulk.Line(x.subject_id, x.quantity, x.description) for x in c.lines],
        evidence=c.evidence, actor=c.actor,
        facts={s: facts(st, c.today, c.community_id, s, c.rule_code, c.occurred_on) for s in ids},
        catalogue=st.catalogue, item_ids=dict(zip(ids, c.item_ids, strict=True)))


def _post_need(c: PostNeed, st: State) -> list[Event]:
    return bulk.decide_post_need(
        need_id=c.need_id, community_id=c.community_id, title=c.title, rule_code=c.rule_code, quantity=c.quantity,
        description=c.description, actor=c.actor, community_known=c.community_id in st.communities,
        month=month_of(c.today), catalogue=st.catalogue)


def _take_need(c: TakeNeed, st: State) -> list[Event]:
    subject = st.subjects.get(c.subject_id)
    f = Facts(c.today, True, False, subject, 0)
    return bulk.decide_take_need(st.needs.get(c.need_id), c.need_id, c.subject_id, f, c.actor)


def _complete_need(c: CompleteNeed, st: State) -> list[Event]:
    need = st.needs.get(c.need_id)
    if need is not None and need.taken_by:
        f = facts(st, c.today, need.community_id, need.taken_by, need.rule_code, c.occurred_on)
    else:
        f = Facts(c.today, False, False, None, 0)
    return bulk.decide_complete_need(need, c.need_id, c.occurred_on, c.evidence, f, c.actor, st.catalogue,
                                     c.item_id)


def _register_community(c: RegisterCommunity, st: State) -> list[Event]:
    return list(roster.register_community(c.community_id, c.name, c.county, c.community_id in st.communities))


def _add_org_unit(c: AddOrgUnit, st: State) -> list[Event]:
    require_same_community(c.actor.community, c.community_id)
    owner = st.unit_owners.get(c.unit_id)
    if owner is not None and owner != c.community_id:
        raise Rejected(f"组织或网格编号 {c.unit_id} 已被其他社区使用", status=409, code="unit_exists")
    community = st.communities.get(c.community_id)
    units = community.units if community else {}
    return list(roster.add_org_unit(community is not None, units, c.community_id, c.unit_id, c.kind, c.name,
                                    c.parent_id))


def _register_subjects(c: RegisterSubjects, st: State) -> list[Event]:
    require_same_community(c.actor.community, c.community_id)
    community = st.communities.get(c.community_id)
    kinds = st.rosters.get(c.community_id, {})
    return list(roster.register_subjects(
        c.community_id, community is not None, c.specs, {s.subject_id for s in c.specs if s.subject_id in st.subjects},
        community.units if community else {}, {i for i, k in kinds.items() if k == "family"},
        {i for i, k in kinds.items() if k == "person"}, c.rows, c.known_problems))


def _on_subject(c: ChangeCategories | MoveOut, st: State) -> Subject | None:
    subject = st.subjects.get(c.subject_id)
    if subject is not None:
        require_same_community(c.actor.community, subject.community_id)
    return subject


def _change_categories(c: ChangeCategories, st: State) -> list[Event]:
    return list(roster.change_categories(_on_subject(c, st), c.subject_id, c.categories, c.changed_on))


def _move_out(c: MoveOut, st: State) -> list[Event]:
    return list(roster.move_out(_on_subject(c, st), c.subject_id, c.moved_out_on, c.reason))


def _publish(c: PublishCatalogue, st: State) -> list[Event]:
    return list(catalogue_log.decide_publish(c, st.published))


_DECIDERS: dict[type[Command], Callable[[Any, State], list[Event]]] = {
    Declare: _declare, Deduct: _deduct, RecordAttendance: _attendance, ReportWork: _work, PostNeed: _post_need,
    TakeNeed: _take_need, CompleteNeed: _complete_need, RegisterCommunity: _register_community,
    AddOrgUnit: _add_org_unit, RegisterSubjects: _register_subjects, ChangeCategories: _change_categories,
    MoveOut: _move_out, PublishCatalogue: _publish,
}
