"""Commands (talks held, the leading group's selection) and the board's chart, given / when / then."""

from __future__ import annotations

import pytest

from services.ranking.chart import bars
from services.ranking.domain.decide import (
    RecordTalk,
    SelectionState,
    SelectRoleModel,
    TalkState,
    record_talk,
    select_role_model,
)
from shared.errors import Rejected
from shared.events.ranking import RoleModelSelected, TalkHeld

DUE = TalkState(due={("s-1", "encouragement"): "party_member", ("s-9", "reminder"): "resident"}, held=frozenset())


def talk(subject: str = "s-1", kind: str = "encouragement") -> RecordTalk:
    return RecordTalk("c-01", "2026-11", subject, kind, "张书记", "谈了下一步打算")


def test_given_a_subject_on_the_list_when_recording_the_talk_then_talk_held() -> None:
    assert record_talk(talk(), DUE) == [TalkHeld(community_id="c-01", month="2026-11", category="party_member",
                                                 subject_id="s-1", talk="encouragement", held_by="张书记",
                                                 note="谈了下一步打算")]


def test_given_a_talk_already_recorded_when_recording_it_again_then_refused_409() -> None:
    with pytest.raises(Rejected) as e:
        record_talk(talk(), TalkState(DUE.due, frozenset({("s-1", "encouragement")})))
    assert (e.value.status, e.value.code) == (409, "talk_already_recorded")


@pytest.mark.parametrize(("subject", "kind"), [("s-2", "encouragement"), ("s-1", "reminder")])
def test_given_a_subject_not_on_that_list_when_recording_then_refused(subject: str, kind: str) -> None:
    with pytest.raises(Rejected) as e:
        record_talk(talk(subject, kind), DUE)
    assert e.value.code == "not_on_talk_list" and "名单" in e.value.reason


def test_given_nominees_when_the_leading_group_selects_one_then_role_model_selected() -> None:
    state = SelectionState({"s-3": "罗开英"}, frozenset())
    got = select_role_model(SelectRoleModel("c-01", "2026-11", "woman", "s-3", "张书记", ""), state)
    assert got == [RoleModelSelected(community_id="c-01", month="2026-11", award="woman", subject_id="s-3",
                                     name="罗开英", selected_by="张书记")]


def test_given_someone_not_nominated_when_selected_then_refused() -> None:
    with pytest.raises(Rejected) as e:
        select_role_model(SelectRoleModel("c-01", "2026-11", "woman", "s-4", "张书记", ""),
                          SelectionState({"s-3": "罗开英"}, frozenset()))
    assert e.value.code == "not_nominated" and "最美巾帼" in e.value.reason


def test_given_points_by_dimension_then_the_chart_is_svg_with_chinese_labels() -> None:
    svg = bars([("community_building", 120), ("civility_hygiene", -6)])
    assert svg.startswith("<svg") and "社区建设参与" in svg and "文明卫生表现" in svg and 'class="bar neg"' in svg
    assert "暂无" in bars([])
