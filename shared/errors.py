"""Refusals every service shares, with no I/O imports (a domain module may import this freely)."""

from __future__ import annotations

from typing import Any


class Rejected(Exception):
    """A command refused by the rules: becomes an HTTP 4xx with the reason (zh-CN) and no event."""

    def __init__(self, reason: str, *, status: int = 422, code: str = "rejected", **detail: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.code = code
        self.detail = detail

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rejected) and (self.code, self.status, self.reason, self.detail) == (
            other.code, other.status, other.reason, other.detail)

    def __hash__(self) -> int:
        return hash((self.code, self.status, self.reason))

    def __repr__(self) -> str:
        return f"Rejected({self.code!r}, {self.status}, {self.reason!r})"


def other_community(community_id: str) -> Rejected:
    """The one wording of "staff act only on their own community" (domain: Roles)."""
    return Rejected(f"无权操作其他社区（{community_id}）的数据", status=403, code="forbidden_community")


def require_same_community(acting_in: str, community_id: str) -> None:
    """``acting_in`` is the actor's community claim; "*" is a county-wide role."""
    if acting_in not in ("*", community_id):
        raise other_community(community_id)


def key_reused() -> Rejected:
    return Rejected("幂等键已用于另一个不同的请求，请换一个新的幂等键", status=409, code="idempotency_key_reused")


def conflict(attempts: int) -> Rejected:
    return Rejected(f"同一记录正被其他请求同时修改，已重试 {attempts} 次仍未成功，请稍后再试", status=409,
                    code="concurrent_update", attempts=attempts)
