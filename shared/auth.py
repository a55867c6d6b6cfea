"""Signed bearer tokens (HS256) with role and community claims.

A community's staff act only on their own community; county roles (auditor, county admin)
carry community "*". Issue tokens with ``python -m shared.auth issue``.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated

import jwt
from fastapi import Depends, Request
from pydantic import BaseModel

from shared.errors import Rejected, other_community
from shared.settings import get_settings

ALL_COMMUNITIES = "*"


class Role(StrEnum):
    declarant = "declarant"  # a subject, or a family's contact
    recorder = "recorder"  # 记录员
    supervisor = "supervisor"  # 监督员
    leading_group = "leading_group"  # 领导小组成员
    secretary = "secretary"  # 第一责任人
    clerk = "clerk"  # supermarket counter
    auditor = "auditor"  # read-only, county-wide
    county_admin = "county_admin"
    site = "site"  # a community site's machine credential


class Principal(BaseModel):
    sub: str  # who: a person or machine id, recorded as the actor of every event
    role: Role
    community: str
    subject_ids: tuple[str, ...] = ()  # for declarants: itself and its family
    name: str = ""

    def may_act_in(self, community_id: str) -> bool:
        return self.community in (ALL_COMMUNITIES, community_id)


def issue_token(principal: Principal, *, days: int = 30, now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    claims = principal.model_dump(mode="json") | {"iat": now, "exp": now + dt.timedelta(days=days)}
    return jwt.encode(claims, get_settings().token_secret, algorithm="HS256")


def read_token(token: str) -> Principal:
    try:
        claims = jwt.decode(token, get_settings().token_secret, algorithms=["HS256"])
        return Principal.model_validate(claims)
    except jwt.ExpiredSignatureError as exc:
        raise Rejected("登录凭证已过期，请重新登录", status=401, code="token_expired") from exc
    except Exception as exc:
        raise Rejected("登录凭证无效", status=401, code="token_invalid") from exc


def current_principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        token = request.cookies.get("points_token", "")
    if not token:
        raise Rejected("需要登录凭证（Authorization: Bearer …）", status=401, code="token_missing")
    return read_token(token)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_role(principal: Principal, *roles: Role) -> None:
    if principal.role not in roles:
        names = "、".join(r.value for r in roles)
        raise Rejected(f"此操作需要以下角色之一：{names}", status=403, code="forbidden_role")


def require_community(principal: Principal, community_id: str) -> None:
    if not principal.may_act_in(community_id):
        raise other_community(community_id)


def main() -> None:
    import typer

    app = typer.Typer(help="Issue signed tokens (county admin).")

    @app.command()
    def issue(sub: str, role: Role, community: str, subject: list[str] = typer.Option([]),  # noqa: B008
              name: str = "", days: int = 30) -> None:
        print(issue_token(Principal(sub=sub, role=role, community=community,
                                    subject_ids=tuple(subject), name=name), days=days))

    @app.command()
    def show(token: str) -> None:
        print(read_token(token).model_dump_json(indent=2))

    app()


if __name__ == "__main__":
    main()
