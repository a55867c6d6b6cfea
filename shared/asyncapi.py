"""The project-wide AsyncAPI document: every topic and every event type, from our own declarations.

``python -m shared.asyncapi [FILE]`` writes ``docs/asyncapi.json``. faststream builds it: a
``KafkaBroker`` that is never started carries one publisher per event type (title = the
CloudEvents ``type``, address = its owning service's topic, payload = the event's pydantic model)
and one for the dead-letter topic. Topics come from ``shared.topics``, events from
``shared.events.catalogue()``: nothing is listed by hand, so a new ``@event`` class is in the
next document, and ``tests/unit/test_docs.py`` fails while the checked-in one is stale.

Addresses use the default topic namespace (``points``); an installation's namespace replaces it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Union

import orjson
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from shared.events import schema_uri
from shared.events.page import meaning, published
from shared.settings import Settings
from shared.topics import ALL, BY_SERVICE, DEAD_LETTER, Topic

DOCUMENT = Path(__file__).resolve().parents[1] / "docs" / "asyncapi.json"
SERVER = "127.0.0.1:9092"  # the local stack's default; an installation names its own brokers
ENVELOPE = ("CloudEvents 1.0, Kafka binary mode: ce_id, ce_source, ce_type, ce_subject, ce_time, ce_dataschema, "
            "ce_sequence (chain position), ce_streamversion, ce_partitionkey, ce_actor, ce_correlationid, "
            "ce_causationid, ce_prevhash, ce_hash headers; the body below is the JSON value.")

DEAD_LETTERS = (" The original record's headers and value, plus dlq_reason, dlq_consumer, dlq_topic, dlq_partition "
                "and dlq_offset headers.")


def address(topic: Topic) -> str:
    return f"{Settings.model_fields['topic_namespace'].default}.{topic.logical}"


def broker() -> KafkaBroker:
    events = published()
    names = [cls.__name__ for cls in events]
    if len(set(names)) != len(names):  # faststream names payload schemas by class: two would merge into one
        raise ValueError(f"event class names must be unique across services: {sorted(names)}")
    kafka = KafkaBroker(SERVER, description="Each service writes only its own topic; topics keep everything for ever.")
    for topic in ALL:  # one channel per topic, its payload any of its events
        owned = tuple(cls for cls in events if BY_SERVICE.get(cls.SERVICE) is topic)
        kafka.publisher(address(topic), title=address(topic), schema=Union[owned] if owned else bytes,  # noqa: UP007
                        description=f"{topic.doc} Key: {topic.key}."
                                    + (DEAD_LETTERS if topic is DEAD_LETTER else "" if owned else " No events yet."))
    for cls in events:  # and one per event type, on its owning service's topic
        topic = BY_SERVICE[cls.SERVICE]
        kafka.publisher(
            address(topic), title=cls.type_name(), schema=cls,
            description=f"{meaning(cls)} Owner: {cls.SERVICE}. Key: {topic.key}. "
                        f"Schema: {schema_uri(cls.type_name())}. {ENVELOPE}")
    return kafka


def document() -> dict[str, Any]:
    spec = AsyncAPI(broker(), title="党建+积分 county points-governance platform: the log", version="1",
                    description="Every topic (shared/topics.py) and every event type (shared/events/) of the "
                                "platform. Topics: " + "; ".join(f"{address(t)}: {t.doc}" for t in ALL))
    return orjson.loads(spec.to_specification().to_json())  # type: ignore[no-any-return]


def render() -> bytes:
    return orjson.dumps(document(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DOCUMENT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render())
    print(path)


if __name__ == "__main__":
    main()
