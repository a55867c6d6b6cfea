"""A compiled body decoder for the catalogue (msgspec): the same event pydantic would give, faster.

``decoder(cls)`` is a function ``bytes -> cls`` for an event whose fields are all plain JSON
values (str, int, bool, date, tuples of those, optional ones, string literals), or None for any
other event (date-times, floats, decimals, nested models, validators: pydantic decodes those).
The struct it parses into mirrors the model field for field, refuses unknown fields as the model
does, and accepts strictly less than pydantic's lax mode: what it refuses (a number where a text
is expected, an integral float, a date-time for a date …) raises ``msgspec.DecodeError`` and the
caller hands the body to pydantic, which accepts it with its own coercions or names the error.
What it accepts, it turns into the model instance pydantic would build from the same body: same
values, same field order, same ``model_fields_set`` (``tests/unit/test_compiled_decoder.py`` holds
the two to that over every event type of the catalogue).

Why: a replay decodes every body of the log; pydantic-core validates in Rust but the Python
objects it builds cost more than msgspec's struct plus an unvalidated ``__dict__`` copy.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Literal

import msgspec
from pydantic_core import PydanticUndefined

from shared.events import Event

_SCALARS = (str, int, bool, dt.date)
# pydantic hands these defaults over as they are (it would copy a mutable one): so may we
_IMMUTABLE_DEFAULTS = (type(PydanticUndefined), type(None), str, int, bool, tuple)
_new = object.__new__
_set = object.__setattr__
_asdict = msgspec.structs.asdict
_UNSET = msgspec.UNSET


def _plain(annotation: Any) -> bool:
    """A type msgspec (strict) decodes to exactly the value pydantic (lax) gives for the same JSON."""
    if annotation in _SCALARS:  # by equality: a datetime is not a date here
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is tuple:
        return len(args) == 2 and args[1] is Ellipsis and args[0] in (str, int)
    if origin is Literal:
        return all(type(a) is str for a in args)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return len(args) == 2 and len(rest) == 1 and _plain(rest[0])
    return False


def _compilable(cls: type[Event]) -> bool:
    decorators = cls.__pydantic_decorators__
    if decorators.field_validators or decorators.model_validators or decorators.validators:
        return False
    if cls.model_config != Event.model_config or cls.__pydantic_root_model__:
        return False
    return all(not f.metadata and f.default_factory is None and _plain(f.annotation)
               and type(f.default) in _IMMUTABLE_DEFAULTS for f in cls.model_fields.values())


@lru_cache(maxsize=256)
def decoder(cls: type[Event]) -> Callable[[bytes], Event] | None:
    if not _compilable(cls):
        return None
    fields = cls.model_fields
    struct = msgspec.defstruct(
        f"{cls.__name__}Body",
        [(name, f.annotation) if f.is_required() else (name, f.annotation, _UNSET) for name, f in fields.items()],
        kw_only=True, forbid_unknown_fields=True)
    parse = msgspec.json.Decoder(struct).decode
    every = frozenset(fields)
    optional = tuple((name, f.default) for name, f in fields.items() if not f.is_required())

    def decode(body: bytes) -> Event:
        values = _asdict(parse(body))
        given = set(every)
        for name, default in optional:  # absent from the body: the model's default, and not "set"
            if values[name] is _UNSET:
                values[name] = default
                given.discard(name)
        ev = _new(cls)
        _set(ev, "__dict__", values)  # what pydantic's model_construct does, without its checks
        _set(ev, "__pydantic_fields_set__", given)
        _set(ev, "__pydantic_extra__", None)
        _set(ev, "__pydantic_private__", None)
        return ev

    return decode
