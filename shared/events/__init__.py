"""The event catalogue: every event of every service, grouped by owning service.

An event type on the wire is ``points.<service>.<Name>.v<version>``. Old versions are upcast on
read (never rewritten): register a function that turns the body of version N into version N+1.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

TYPE_PREFIX = "points"


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


@lru_cache(maxsize=1024)
def parse_type(type_name: str) -> tuple[str, str, int]:
    parts = type_name.split(".")
    if len(parts) != 4 or parts[0] != TYPE_PREFIX or not parts[3].startswith("v") or not parts[3][1:].isdigit():
        raise UnknownEventType(f"malformed event type {type_name!r}")
    return parts[1], parts[2], int(parts[3][1:])


def event_class(type_name: str) -> type[Event]:
    service, name, _ = parse_type(type_name)
    cls = _by_name.get((service, name))
    if cls is None:
        raise UnknownEventType(f"unknown event type {type_name!r}")
    return cls


@lru_cache(maxsize=1024)
def current_class(type_name: str) -> type[Event] | None:
    """The event class when the type names its current version (no upcasting needed), else None."""
    _, _, version = parse_type(type_name)
    cls = event_class(type_name)
    return cls if version == cls.VERSION else None


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
