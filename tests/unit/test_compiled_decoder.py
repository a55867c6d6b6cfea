"""The compiled (msgspec) body decoder gives exactly the event pydantic gives, over every event type
of the catalogue: whenever it accepts a body, pydantic accepts it too, with the same values, field
order and ``model_fields_set``; whatever it refuses goes to pydantic (``shared.envelope._event``)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.envelope import encode_body
from shared.events import Event, catalogue, load_catalogue
from shared.events.compiled import decoder
from shared.events.declarations import DeclarationSubmitted

pytestmark = pytest.mark.unit

load_catalogue()
COMPILED = [cls for cls in catalogue() if decoder(cls) is not None]
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
                    | st.dates().map(dt.date.isoformat) | st.datetimes().map(dt.datetime.isoformat),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=6)


def dumps(body: Any) -> bytes:
    """The standard library's encoder: unlike orjson it writes integers beyond 64 bits."""
    return json.dumps(body, ensure_ascii=False).encode()


def written(cls: type[Event], data: st.DataObject) -> dict[str, Any]:
    """An event as a service writes it (its JSON value), drawn by hypothesis from the model's fields."""
    return data.draw(st.builds(cls)).model_dump(mode="json")


def same_event(fast: Event, slow: Event) -> None:
    assert type(fast) is type(slow)
    assert fast == slow
    assert list(fast.__dict__.items()) == list(slow.__dict__.items())  # values and field order
    assert {k: type(v) for k, v in fast.__dict__.items()} == {k: type(v) for k, v in slow.__dict__.items()}
    assert fast.model_fields_set == slow.model_fields_set
    assert repr(fast) == repr(slow)
    assert fast.model_dump(mode="json") == slow.model_dump(mode="json")


def when_both_decode(cls: type[Event], body: bytes) -> None:
    """Whenever the compiled decoder accepts ``body``, pydantic gives the very same event."""
    fast = decoder(cls)
    assert fast is not None
    try:
        got = fast(body)
    except msgspec.DecodeError:
        return  # the caller falls back to pydantic: its answer by construction
    same_event(got, cls.model_validate_json(body))


def test_the_hot_events_of_a_replay_are_compiled() -> None:
    names = {cls.__name__ for cls in COMPILED}
    assert {"DeclarationSubmitted", "DeductionRecorded", "SubjectRegistered", "ItemVerified", "ItemReturned",
            "ItemRejected", "PointsAwarded", "PointsCorrected"} <= names


@pytest.mark.parametrize("cls", COMPILED, ids=lambda cls: cls.__name__)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_an_event_as_written_decodes_to_what_pydantic_gives(cls: type[Event], data: st.DataObject) -> None:
    # given an event as a service writes it, with some of its optional fields left out (older writers)
    body = written(cls, data)
    optional = [name for name, f in cls.model_fields.items() if not f.is_required()]
    for name in data.draw(st.lists(st.sampled_from(optional), unique=True) if optional else st.just([])):
        del body[name]
    # when both decode it, then they agree (and the compiled one accepts every such body)
    raw = dumps(body)
    assert decoder(cls)(raw) is not None  # type: ignore[misc]
    when_both_decode(cls, raw)


@pytest.mark.parametrize("cls", COMPILED, ids=lambda cls: cls.__name__)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_tampered_body_is_decoded_as_pydantic_would_or_handed_to_it(cls: type[Event], data: st.DataObject) -> None:
    # given a valid body with one field replaced by any JSON value, or an unknown field added
    body = written(cls, data)
    name = data.draw(st.sampled_from([*cls.model_fields, "unknown_field"]))
    body[name] = data.draw(JSON)
    # when both decode it, then the compiled decoder never accepts what pydantic would not give
    when_both_decode(cls, dumps(body))


@pytest.mark.parametrize("body", [
    b'{"item_id": "a", "item_id": "b"}', b'[]', b'"x"', b'{', b'{"item_id": "\\ud800"}', b'  {}  ', b'null',
])
def test_odd_bytes_are_decoded_as_pydantic_would_or_handed_to_it(body: bytes) -> None:
    valid = orjson.loads(encode_body(DeclarationSubmitted(
        item_id="i", community_id="c", subject_id="s", category="resident", rule_code="R", rule_version=1,
        dimension="civility_hygiene", quantity=1, points=5, channel="app", occurred_on=dt.date(2026, 11, 1),
        entered_by="s", declared_by="s")))
    when_both_decode(DeclarationSubmitted, body)
    # and spliced into a valid body (a duplicated key: the last one counts in both)
    when_both_decode(DeclarationSubmitted, orjson.dumps(valid)[:-1] + b', ' + body.strip()[1:-1] + b'}'
                     if body.strip().startswith(b'{') and body.strip().endswith(b'}') and len(body.strip()) > 2
                     else orjson.dumps(valid))
