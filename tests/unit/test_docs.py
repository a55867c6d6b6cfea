"""docs/events.md and docs/asyncapi.json are generated from the catalogue and the topic registry:
checked in, and never allowed to drift from them."""

from __future__ import annotations

from typing import ClassVar

import pytest

from shared import asyncapi
from shared import events as catalogue_module
from shared.events import Event, catalogue, load_catalogue, page
from shared.topics import ALL, BY_SERVICE

pytestmark = pytest.mark.unit

REGENERATE = "regenerate with `python -m shared.events docs` and `python -m shared.asyncapi`"


@pytest.fixture(scope="module")
def document() -> dict:
    return asyncapi.document()


def test_the_checked_in_event_page_is_the_generated_one() -> None:
    assert page.PAGE.read_text(encoding="utf-8") == page.render(), f"docs/events.md is stale: {REGENERATE}"


def test_the_checked_in_asyncapi_document_is_the_generated_one() -> None:
    assert asyncapi.DOCUMENT.read_bytes() == asyncapi.render(), f"docs/asyncapi.json is stale: {REGENERATE}"


def test_every_event_type_is_a_channel_on_its_owning_topic_with_its_schema(document: dict) -> None:
    schemas = document["components"]["schemas"]
    for cls in page.published():
        channel = document["channels"].get(cls.type_name())
        assert channel is not None, f"{cls.type_name()} missing from the AsyncAPI document"
        assert channel["address"] == asyncapi.address(BY_SERVICE[cls.SERVICE])
        message = document["components"]["messages"][f"{cls.type_name()}:Message"]
        assert message["payload"] == {"$ref": f"#/components/schemas/{cls.__name__}"}
        expected = cls.model_json_schema(mode="validation")
        assert sorted(schemas[cls.__name__]["properties"]) == sorted(expected["properties"])
        assert sorted(schemas[cls.__name__].get("required", [])) == sorted(expected.get("required", []))


def test_every_topic_of_the_registry_is_a_channel(document: dict) -> None:
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == {asyncapi.address(topic) for topic in ALL}


def test_every_event_of_the_catalogue_is_published() -> None:
    load_catalogue()
    from_shared = {cls for cls in catalogue() if cls.__module__.startswith("shared.events.")}
    assert set(page.published()) == from_shared and len(from_shared) >= 28


def test_every_event_type_is_on_the_events_page() -> None:
    text = page.render()
    for cls in page.published():
        assert f"`{cls.type_name()}` — owned by **{cls.SERVICE}**" in text


def test_an_event_added_to_the_catalogue_appears_in_both_and_the_checked_in_ones_go_stale(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # given an event a service adds
    class TalkHeld(Event):
        """A reminder or encouragement talk was held (励志谈心室)."""

        SERVICE: ClassVar[str] = "ranking"
        talk_id: str

    TalkHeld.__module__ = "shared.events.ranking"  # declared where the ranking service declares its events
    monkeypatch.setitem(catalogue_module._by_name, ("ranking", "TalkHeld"), TalkHeld)
    # when the documents are generated again
    document, text = asyncapi.document(), page.render()
    # then both name it, and the checked-in ones no longer match
    assert document["channels"][TalkHeld.type_name()]["address"] == "points.ranking"
    assert "A reminder or encouragement talk was held" in text
    assert asyncapi.DOCUMENT.read_bytes() != asyncapi.render()
    assert page.PAGE.read_text(encoding="utf-8") != text
