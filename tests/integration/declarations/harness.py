"""Shared by the declarations tests: a fresh database + topic namespace, an in-process service
with a fixed clock, and the example community's roster (the seed's people among them)."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from deploy.demo import SUBJECTS as DEMO_SUBJECTS
from deploy.demo import UNITS, person
from services.declarations.app import build
from services.declarations.context import DeclarationsConfig, fixed_clock
from shared.auth import Principal, Role, issue_token
from shared.settings import Settings
from tests.support.settings import fresh_settings  # noqa: F401  (used by the declarations tests)

COMMUNITY = "c-hz01"
OTHER = "c-hz02"
# "Now" for the scripted month: the last day of November 2026, noon in Asia/Shanghai.
NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def tok(sub: str, role: Role, community: str = COMMUNITY, *subjects: str) -> dict[str, str]:
    token = issue_token(Principal(sub=sub, role=role, community=community, subject_ids=subjects))
    return {"authorization": f"Bearer {token}"}


ADMIN = tok("county-admin", Role.county_admin, "*")
RECORDER = tok("rec-wang", Role.recorder)
SUPERVISOR = tok("sup-liu", Role.supervisor)
SITE = tok("site-hz01-oa", Role.site)


def key() -> dict[str, str]:
    return {"idempotency-key": str(uuid.uuid4())}


@dataclass
class InProcess:
    app: Any
    http: httpx.AsyncClient
    settings: Settings

    async def post(self, path: str, body: dict[str, Any], auth: dict[str, str], **headers: str) -> httpx.Response:
        return await self.http.post(path, json=body, headers=auth | key() | headers)

    async def events(self) -> int:
        return await self.app.state.runtime.pool.fetchval("select count(*) from events")  # type: ignore[no-any-return]

    def set_now(self, now: dt.datetime) -> None:
        self.app.state.clock = fixed_clock(now)


@contextlib.asynccontextmanager
async def in_process(settings: Settings, now: dt.datetime = NOW) -> AsyncIterator[InProcess]:
    app = build(settings, DeclarationsConfig(now=now))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://declarations", timeout=30) as http:
            yield InProcess(app, http, settings)


# The example community (organisation, grid, subjects) is the demo's (deploy/demo.py), with one more
# mass organisation and one more property staff member: two or more subjects of every category.
SUBJECTS = [s | {"registered_on": "2026-10-01"} for s in (
    *DEMO_SUBJECTS[:3],
    {"subject_id": "o-youth", "kind": "organisation", "name": "共青团工作站", "categories": ["mass_organization"]},
    *DEMO_SUBJECTS[3:],
    person("p-sun", "孙德明", "male", "property_staff"),
)]


async def register_roster(svc: InProcess | httpx.AsyncClient, community: str = COMMUNITY) -> None:
    """The example community, its party organisation and grid, and its subjects."""

    async def post(path: str, body: dict[str, Any], auth: dict[str, str]) -> None:
        http = svc.http if isinstance(svc, InProcess) else svc
        r = await http.post(path, json=body, headers=auth | key())
        assert r.status_code == 201, r.text

    await post("/communities", {"community_id": community, "name": "示例安置社区"}, ADMIN)
    for unit_id, kind, name, parent in UNITS:
        await post("/org-units", {"community_id": community, "unit_id": f"{community}-{unit_id}", "kind": kind,
                                  "name": name, "parent_id": f"{community}-{parent}" if parent else None}, ADMIN)
    subjects = [s | {"units": [f"{community}-{u}" for u in s.get("units", [])]} for s in SUBJECTS]
    if community != COMMUNITY:
        subjects = [_renamed(s, community) for s in subjects]
    await post("/subjects", {"community_id": community, "subjects": subjects}, ADMIN)


async def publish_review(settings: Settings, community_id: str, events: list[Any]) -> None:
    """Stand in for the review service: put its events on the review topic, one community stream."""
    from aiokafka import AIOKafkaProducer

    from shared.envelope import encode_body, headers, source_for
    from shared.kafka import producer_config
    from shared.topics import REVIEW

    producer = AIOKafkaProducer(**producer_config(settings))
    await producer.start()
    try:
        for n, ev in enumerate(events, start=1):
            event_id = uuid.uuid4()
            await producer.send_and_wait(
                REVIEW.name(settings), value=encode_body(ev), key=community_id.encode(),
                headers=headers(event_id=event_id, source=source_for("review"), type_name=ev.type_name(),
                                stream_id=f"community-{community_id}", version=n, time=NOW, actor="review-test",
                                correlation_id=event_id, causation_id=None, prev_hash="0" * 64, digest="x"))
    finally:
        await producer.stop()


def _renamed(s: dict[str, Any], community: str) -> dict[str, Any]:
    out = dict(s)
    for k in ("subject_id", "family_id", "contact_id"):
        if out.get(k):
            out[k] = f"{community}-{out[k]}"
    return out
