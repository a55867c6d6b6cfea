"""CloudEvents 1.0 in Kafka binary mode: ``ce_`` headers, JSON body = the pydantic event.

Attributes on every record the relay writes:
  ``id`` (unique per source), ``source`` (absolute URI naming the deployment and the service:
  ``source_for``), ``type`` (reverse-DNS name with the version), ``subject`` (the stream id),
  ``time`` (UTC, microseconds, ``Z``), ``dataschema`` (the body's published JSON Schema),
  ``datacontenttype`` (the ``content-type`` header, application/json);
Extensions: ``sequence`` (the log-wide chain position, zero-padded to 20 digits so it sorts as
text within its source), ``streamversion`` (the version within the subject's stream),
``partitionkey`` (the Kafka key), ``actor``, ``correlationid``, ``causationid``, and the chain:
``prevhash`` and ``hash`` (see ``canonical`` for the recipe).

Records written before these attributes (legacy: ``ce_sequence`` = stream version, relative
source, per-stream chain) are read as they are, never rewritten.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson
from asyncpg.pgproto.pgproto import UUID as FastUUID  # a uuid.UUID subclass parsed in C, ~7x faster
from pydantic import ValidationError

from shared.events import Event, UnknownEventType, current_class, schema_uri, upcast
from shared.events.compiled import decoder
from shared.settings import Settings, get_settings
from shared.sites import SITE_SERVICE

SPECVERSION = "1.0"
GENESIS_HASH = "0" * 64
CONTENT_TYPE = b"application/json"
STRUCTURED = "application/cloudevents+json"
CHAIN_RECIPE = "hezhang-points-chain-v1"
SOURCE_BASE = "https://points.hezhang.gov.cn/"


class UndecodableRecord(ValueError):
    """A record that cannot become an event: the reason goes to the dead-letter topic."""


@dataclass(slots=True)  # not frozen: a frozen dataclass costs ~1.3 µs more per event on replay
class Envelope:
    id: uuid.UUID
    source: str
    type: str
    subject: str  # the stream id ("" when a foreign record has no subject)
    sequence: int  # the STREAM VERSION (wire: ce_streamversion; legacy records: ce_sequence); 0 if absent
    time: dt.datetime
    actor: str
    correlation_id: str  # kept as the header's text: parsing two more UUIDs per record costs replay time
    causation_id: str | None
    key: str
    prev_hash: str
    hash: str
    event: Event
    position: int | None = None  # log-wide chain position (wire: ce_sequence); None on legacy records


def encode_body(event: Event) -> bytes:
    return orjson.dumps(event.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)


def format_time(time: dt.datetime) -> str:
    """The one text form of ``time`` on the wire and in the chain: UTC, 6 decimals, ``Z``."""
    if time.tzinfo is None:
        raise ValueError("event time has no time zone")
    return time.astimezone(dt.UTC).isoformat(timespec="microseconds")[:-6] + "Z"  # [:-6]: "+00:00"


def format_sequence(position: int) -> str:
    return f"{position:020d}"


def canonical(*, position: int, prev_hash: str, event_id: uuid.UUID | str, type_name: str, source: str,
              subject: str, version: int, time: dt.datetime | str, actor: str, correlation_id: uuid.UUID | str,
              causation_id: uuid.UUID | str | None, key: str, body: bytes) -> bytes:
    """The bytes a chain hash is taken over: ``hash = sha256(canonical).hexdigest()``.

    Fourteen lines of UTF-8 text, each ended by one LF, then the record's value (the JSON body)
    byte for byte::

        hezhang-points-chain-v1
        <sequence: chain position, 20 digits>   = ce_sequence
        <hash of the previous record, 64 hex>   = ce_prevhash (64 zeros for the first)
        <id>                                    = ce_id
        <type>                                  = ce_type
        <source>                                = ce_source
        <subject>                               = ce_subject
        <stream version, decimal>               = ce_streamversion
        <time>                                  = ce_time (UTC, 6 decimals, Z)
        <actor>                                 = ce_actor
        <correlation id>                        = ce_correlationid
        <causation id, or an empty line>        = ce_causationid
        <partition key>                         = ce_partitionkey (the Kafka key)
        <body length in bytes, decimal>
        <body>

    Every line is the header's value exactly as it travels. Recompute with standard tools::

        { printf '%s\\n' hezhang-points-chain-v1 "$SEQ" "$PREV" "$ID" "$TYPE" "$SOURCE" "$SUBJECT" \\
            "$VERSION" "$TIME" "$ACTOR" "$CORR" "$CAUSE" "$KEY" "$(wc -c < body.json)"; cat body.json; } | sha256sum

    No header value may contain a line feed (the store refuses one), so the lines cannot shift.
    """
    lines = (CHAIN_RECIPE, format_sequence(position), prev_hash, str(event_id), type_name, source, subject,
             str(version), time if isinstance(time, str) else format_time(time), actor, str(correlation_id),
             "" if causation_id is None else str(causation_id), key, str(len(body)))
    return ("\n".join(lines) + "\n").encode() + body


def link_hash(**fields: Any) -> str:
    """sha256 hex of ``canonical(**fields)``: one link of the log's chain."""
    return hashlib.sha256(canonical(**fields)).hexdigest()


def chain_hash(prev_hash: str, type_name: str, stream_id: str, version: int, body: bytes) -> str:
    """LEGACY per-stream chain (records written before the log chain): kept to verify them.

    hash_n = sha256(hash_{n-1} | type | stream | version | body)."""
    h = hashlib.sha256()
    h.update(f"{prev_hash}\n{type_name}\n{stream_id}\n{version}\n".encode())
    h.update(body)
    return h.hexdigest()


def source_for(service: str, settings: Settings | None = None) -> str:
    """The CloudEvents ``source`` this process writes ``service``'s events as (absolute URI): ids are unique
    per source, and each source is one hash chain. On a community site (``SITE``) the declarations
    source is the site's (``site_source``); elsewhere the deployment's (``deployment_source``)."""
    settings = settings or get_settings()
    if settings.site and service == SITE_SERVICE:
        return site_source(settings.site, settings)
    return deployment_source(service, settings)


def deployment_source(service: str, settings: Settings | None = None) -> str:
    """The source of a county service of this deployment: ``https://points.hezhang.gov.cn/<deployment>/<service>``."""
    return f"{SOURCE_BASE}{(settings or get_settings()).deployment}/{service}"


def site_source(site: str, settings: Settings | None = None) -> str:
    """The source of community site ``site``: the deployment's declarations source plus ``/<site>``."""
    return f"{deployment_source(SITE_SERVICE, settings)}/{site}"


def legacy_source(service: str) -> str:
    """The relative ``source`` records carried before ``source_for`` named the deployment."""
    return f"/hezhang/{service}"


def headers(
    *, event_id: uuid.UUID, source: str, type_name: str, stream_id: str, version: int, time: dt.datetime,
    actor: str, correlation_id: uuid.UUID, causation_id: uuid.UUID | None, prev_hash: str, digest: str,
    position: int | None = None, key: str | None = None,
) -> list[tuple[str, bytes]]:
    """Binary-mode headers. ``position`` (the chain position) becomes ``ce_sequence``; without it
    (test feeds, hand-made records) the record simply has no ``sequence``."""
    out = [
        ("ce_specversion", b"1.0"),
        ("ce_id", str(event_id).encode()),
        ("ce_source", source.encode()),
        ("ce_type", type_name.encode()),
        ("ce_subject", stream_id.encode()),
        ("ce_time", format_time(time).encode()),
        ("ce_dataschema", schema_uri(type_name).encode()),
        ("ce_streamversion", str(version).encode()),
        ("ce_actor", actor.encode()),
        ("ce_correlationid", str(correlation_id).encode()),
        ("ce_prevhash", prev_hash.encode()),
        ("ce_hash", digest.encode()),
        ("content-type", CONTENT_TYPE),
    ]
    if position is not None:
        out.append(("ce_sequence", format_sequence(position).encode()))
    if key is not None:
        out.append(("ce_partitionkey", key.encode()))
    if causation_id is not None:
        out.append(("ce_causationid", str(causation_id).encode()))
    return out


_UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")
_REQUIRED = ("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time")  # time: replays "as of" need it


def decode(headers: Any, key: bytes | None, value: bytes | None) -> Envelope:
    """Kafka record (binary or structured mode) -> Envelope, or UndecodableRecord naming what is wrong.

    Optional attributes may be absent (``subject``, ``sequence``, the extensions)."""
    try:
        h = {k: v.decode() for k, v in (headers or ())}
    except (UnicodeDecodeError, AttributeError, ValueError) as exc:
        raise UndecodableRecord(f"headers are not UTF-8 text: {exc}") from exc
    if "ce_specversion" not in h and h.get("content-type", "").startswith(STRUCTURED):
        h, value = _from_structured(value)
    if not all(map(h.get, _REQUIRED)):
        missing = [name for name in _REQUIRED if not h.get(name)]
        raise UndecodableRecord(f"missing CloudEvents header(s): {', '.join(missing)}")
    if h["ce_specversion"] != SPECVERSION:
        raise UndecodableRecord(f"unsupported ce_specversion {h['ce_specversion']!r}")
    correlation = h.get("ce_correlationid") or h["ce_id"]
    causation = h.get("ce_causationid") or None
    try:
        event_id = FastUUID(h["ce_id"])
        time = dt.datetime.fromisoformat(h["ce_time"])
        if "ce_streamversion" in h:
            version = int(h["ce_streamversion"])
            position = int(h["ce_sequence"]) if "ce_sequence" in h else None
        else:  # legacy: ce_sequence was the stream version
            version, position = int(h.get("ce_sequence") or 0), None
    except ValueError as exc:
        raise UndecodableRecord(f"malformed CloudEvents header: {exc}") from exc
    if not _UUID_TEXT.fullmatch(correlation) or (causation is not None and not _UUID_TEXT.fullmatch(causation)):
        raise UndecodableRecord("malformed CloudEvents header: correlation or causation id is not a UUID")
    if time.tzinfo is None:
        raise UndecodableRecord("ce_time has no time zone")
    if value is None:
        raise UndecodableRecord("record has no body")
    ev = _event(h["ce_type"], value)
    return Envelope(  # positional: the order of the fields above; measurably cheaper per record
        event_id, h["ce_source"], h["ce_type"], h.get("ce_subject", ""), version, time, h.get("ce_actor", ""),
        correlation, causation, (key or b"").decode(errors="replace"), h.get("ce_prevhash", ""),
        h.get("ce_hash", ""), ev, position,
    )


def _event(type_name: str, value: bytes) -> Event:
    try:
        current = current_class(type_name)
        if current is not None:  # the common case: the compiled decoder, else pydantic in one pass
            fast = decoder(current)
            if fast is not None:
                try:
                    return fast(value)
                except msgspec.DecodeError:
                    pass  # refused by the strict decoder: pydantic accepts it (lax) or names what is wrong
            return current.model_validate_json(value)
        body = orjson.loads(value)
        if not isinstance(body, dict):
            raise UndecodableRecord("body is not a JSON object")
        cls, body = upcast(type_name, body)
        return cls.model_validate(body)
    except UnknownEventType as exc:
        raise UndecodableRecord(str(exc)) from exc
    except orjson.JSONDecodeError as exc:
        raise UndecodableRecord(f"body is not JSON: {exc}") from exc
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if any(e["type"] == "json_invalid" for e in errors):
            raise UndecodableRecord(f"body is not JSON: {errors[0]['msg']}") from exc
        if any(e["type"] == "model_type" for e in errors):
            raise UndecodableRecord("body is not a JSON object") from exc
        raise UndecodableRecord(f"body does not match {type_name}: {errors}") from exc


def _from_structured(value: bytes | None) -> tuple[dict[str, str], bytes | None]:
    """A structured-mode record (the whole CloudEvent as JSON) as binary-mode headers and body."""
    try:
        doc = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        raise UndecodableRecord(f"structured CloudEvent is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise UndecodableRecord("structured CloudEvent is not a JSON object")
    data = doc.pop("data", None)
    h = {f"ce_{k}": v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in doc.items()}
    return h, None if data is None else orjson.dumps(data)
