"""The event catalogue: every event of every service, grouped by owning service.

An event type on the wire is a reverse-DNS name with its version,
``cn.gov.hezhang.points.<service>.<Name>.v<version>`` (CloudEvents ``type``). Records written
before that name was adopted say ``points.<service>.<Name>.v<version>``: both parse to the same
class. Old versions are upcast on read (never rewritten): register a function that turns the
body of version N into version N+1.

Each type's body has a JSON Schema generated from its pydantic model, published at
``schema_uri(type)`` (the record's ``dataschema``); ``python -m shared.events schemas DIR``
writes them out as ``DIR/<type>.json`` for that web root.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

TYPE_PREFIX = "cn.gov.hezhang.points"
LEGACY_PREFIX = "points"  # type names written before the reverse-DNS names: read, never rewritten
SCHEMA_BASE = "https://points.hezhang.gov.cn/schemas/"  # where ``python -m shared.events schemas`` output is served


class Event(BaseModel):
    """Base of every domain event: frozen, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    SERVICE: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1

    @classmethod
    def type_name(cls) -> str:
        return f"{TYPE_PREFIX}.{cls.SERVICE}.{cls.__name__}.v{cls.VERSION}"


class UnknownEventType(ValueError):
    pass


_by_name: dict[tuple[str, str], type[Event]] = {}
_upcasters: dict[tuple[str, str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


def event(cls: type[Event]) -> type[Event]:
    """Class decorator: put an event in the catalogue."""
    key = (cls.SERVICE, cls.__name__)
    if key in _by_name:
        raise ValueError(f"event {key} registered twice")
    _by_name[key] = cls
    return cls


def upcaster(
    service: str, name: str, from_version: int
) -> Callable[[Callable[[dict[str, Any]], dict[str, Any]]], Callable[[dict[str, Any]], dict[str, Any]]]:
    def register(fn: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[dict[str, Any]], dict[str, Any]]:
        _upcasters[(service, name, from_version)] = fn
        return fn

    return register


_PREFIX_PARTS = tuple(TYPE_PREFIX.split("."))


@lru_cache(maxsize=1024)
def parse_type(type_name: str) -> tuple[str, str, int]:
    """(service, event name, version) of a current or legacy type name."""
    parts = tuple(type_name.split("."))
    if parts[:-3] not in (_PREFIX_PARTS, (LEGACY_PREFIX,)) or len(parts) < 4:
        raise UnknownEventType(f"malformed event type {type_name!r}")
    service, name, version = parts[-3:]
    if not version.startswith("v") or not version[1:].isdigit():
        raise UnknownEventType(f"malformed event type {type_name!r}")
    return service, name, int(version[1:])


def event_class(type_name: str) -> type[Event]:
    service, name, _ = parse_type(type_name)
    cls = _by_name.get((service, name))
    if cls is None:
        raise UnknownEventType(f"unknown event type {type_name!r}")
    return cls


@lru_cache(maxsize=1024)
def current_class(type_name: str) -> type[Event] | None:
    """The event class when the type is its current name (no upcasting needed), else None."""
    cls = event_class(type_name)
    return cls if type_name == cls.type_name() else None


def upcast(type_name: str, body: dict[str, Any]) -> tuple[type[Event], dict[str, Any]]:
    """Bring a body of any known version up to the catalogue's current version."""
    service, name, version = parse_type(type_name)
    cls = event_class(type_name)
    if version > cls.VERSION:
        raise UnknownEventType(f"{type_name!r} is newer than this program knows (v{cls.VERSION})")
    while version < cls.VERSION:
        step = _upcasters.get((service, name, version))
        if step is None:
            raise UnknownEventType(f"no upcaster for {service}.{name} v{version}")
        body = step(body)
        version += 1
    return cls, body


def load_catalogue() -> None:
    """Import every service's events so the catalogue is complete."""
    from shared.events import declarations, exchange, ranking, review  # noqa: F401


def schema_uri(type_name: str) -> str:
    """The stable URI of the JSON Schema of a type's body (CloudEvents ``dataschema``)."""
    return f"{SCHEMA_BASE}{type_name}.json"


def json_schema(cls: type[Event]) -> dict[str, Any]:
    """JSON Schema (2020-12) of an event's body, as the pydantic model validates it."""
    schema = cls.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": schema_uri(cls.type_name()),
            **schema}


def catalogue() -> list[type[Event]]:
    """Every registered event class, in a stable order."""
    return [cls for _, cls in sorted(_by_name.items())]
