"""HTTP commands and queries of the declarations service (thin: validate, decide, append)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, ConfigDict, Field

from shared.auth import CurrentPrincipal, Role, require_community
from shared.commands import Rejected, fingerprint, run_idempotent
from shared.events.declarations import DeclarationSubmitted
from shared.service import Runtime
from shared.store import Recorded

router = APIRouter()


class DeclareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    community_id: str = Field(min_length=1, max_length=64)
    subject_id: str = Field(min_length=1, max_length=64)
    rule_code: str = Field(min_length=1, max_length=64)
    quantity: int = Field(1, ge=1, le=1000)
    occurred_on: dt.date
    channel: str = Field(min_length=1, max_length=32)
    description: str = Field("", max_length=2000)
    evidence: list[str] = Field(default_factory=list, max_length=20)


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


@router.post("/declarations", status_code=201, tags=["declarations"])
async def declare(
    body: DeclareRequest,
    request: Request,
    principal: CurrentPrincipal,
    idempotency_key: Annotated[str, Header(min_length=8, max_length=128)],
) -> dict[str, Any]:
    if principal.role == Role.declarant:
        if body.subject_id not in principal.subject_ids:
            raise Rejected("申报人只能为本人（或本家庭）申报", status=403, code="not_own_subject")
    require_community(principal, body.community_id)
    rt = runtime(request)
    now = dt.datetime.now(dt.UTC)

    async def work(conn: Any) -> tuple[int, dict[str, Any]]:
        declaration_id = str(uuid.uuid4())
        event = DeclarationSubmitted(
            item_id=declaration_id, community_id=body.community_id, subject_id=body.subject_id,
            category="resident", rule_code=body.rule_code, rule_version=1, dimension="community_building",
            quantity=body.quantity, points=body.quantity, channel=body.channel, occurred_on=body.occurred_on,
            description=body.description, evidence=tuple(body.evidence), entered_by=principal.sub,
            declared_by=principal.sub,
        )
        envs = await rt.store.append(
            conn, f"declaration-{declaration_id}", 0, [event], key=body.subject_id,
            recorded=Recorded(actor=principal.sub, time=now, correlation_id=uuid.uuid4()),
        )
        return 201, {"declaration_id": declaration_id, "event_ids": [str(e.id) for e in envs]}

    status, response, _ = await run_idempotent(
        rt.pool, f"declare:{idempotency_key}", fingerprint(body.model_dump(mode="json")), work)
    return response


@router.get("/ledger", tags=["ledger"])
async def ledger(request: Request, principal: CurrentPrincipal, community_id: str,
                 subject_id: str | None = None, month: str | None = None, limit: int = 500) -> dict[str, Any]:
    require_community(principal, community_id)
    rows = await runtime(request).pool.fetch(
        """select * from ledger where community_id = $1 and ($2::text is null or subject_id = $2)
           and ($3::text is null or month = $3) order by recorded_at, item_id limit $4""",
        community_id, subject_id, month, min(limit, 5000),
    )
    return {"items": [dict(r) | {"event_id": str(r["event_id"])} for r in rows]}
