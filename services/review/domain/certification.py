"""Monthly certification (seed: the leading group certifies on the last day of the month). No I/O here.

Each member signs the digest of the month's list from their own session (``SignMonth``); the
signature that completes the quorum is appended together with an award per verified item and
the closing ``MonthCertified``, so a month is certified in one append. A signature counts only
for the digest it signed: if the list changes (an item verified, overruled, carried in), earlier
signatures stay in the log but no longer count, and the members sign the new list.

Certification refuses while an item still waits for a recorder's first look (otherwise those
residents' points would silently drop into the late-item path). Returned items are carried into
the next month in the same append (``ItemCarriedOver``): no item is left in limbo. Rejected items
are not certified. Default rule: nobody certifies an item they declared or recorded, so an item
needs ``quorum`` signers other than its declarant and recorder.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.errors import Rejected
from shared.events.review import (
    CertificationSigned,
    ItemCarriedOver,
    MonthCertified,
    PointsAwarded,
    ReviewEvent,
    certification_digest,
)

from .commands import Rules, SignMonth
from .evolve import ReviewState
from .model import Item, Signer, last_day, local_date, local_time, next_month

LEADING_ROLES = ("secretary", "leading_group")
ROLE_ZH = {"secretary": "第一责任人", "leading_group": "领导小组成员"}


def awards_of(items: Sequence[Item]) -> list[PointsAwarded]:
    """What certifying these items would award: the verified ones, in item id order."""
    return [PointsAwarded(item_id=i.item_id, community_id=i.community_id, month=i.month, subject_id=i.subject_id,
                          category=i.category, dimension=i.dimension, rule_code=i.rule_code, points=i.points)
            for i in sorted(items, key=lambda i: i.item_id) if i.status == "verified"]


def sign(cmd: SignMonth, state: ReviewState, rules: Rules) -> list[ReviewEvent]:
    """The signature; with it, when it completes the quorum, carries, awards and MonthCertified."""
    month = state.month(cmd.month)
    if month.certified_at is not None:
        raise Rejected(f"{cmd.month} 月已于 {local_time(month.certified_at, rules.tz)} 认定，不能重复认定",
                       status=409, code="already_certified")
    # seed: the leading group certifies on the last day of each month (Asia/Shanghai)
    end = last_day(cmd.month)
    if local_date(cmd.now, rules.tz) < end:
        raise Rejected(f"{cmd.month} 月的认定最早在 {end:%Y-%m-%d}（当月最后一天）进行",
                       status=422, code="too_early", earliest=end.isoformat())
    _member(cmd.signer, state.community_id)
    items = state.items_of(cmd.month)
    waiting = sorted(i.item_id for i in items if i.status == "submitted")
    if waiting:
        raise Rejected(f"还有 {len(waiting)} 个条目待审核，请记录员审核完毕后再签署认定",
                       status=409, code="items_waiting", waiting=len(waiting), first=waiting[:20])
    awards = awards_of(items)
    digest = certification_digest(awards)
    if cmd.digest != digest:
        raise Rejected("认定名单在您查看后已有变化，请刷新页面，核对新名单后再签署", status=409,
                       code="digest_changed", digest=digest)
    earlier = valid_signers(state, cmd.month, digest)
    if any(s.sub == cmd.signer.sub for s in earlier):
        raise Rejected("您已签署过这份认定名单，请等待其他成员签署", status=409, code="already_signed")
    signed = CertificationSigned(community_id=state.community_id, month=cmd.month, signer=cmd.signer.sub,
                                 role=cmd.signer.role, name=cmd.signer.name, digest=digest, signed_at=cmd.now)
    signers = [*earlier, cmd.signer]
    if still_needed(signers, items, rules.quorum):
        return [signed]
    carried = [ItemCarriedOver(item_id=i.item_id, community_id=i.community_id, month=i.month,
                               to_month=next_open_month(state, i.month),
                               reason=f"{cmd.month} 月认定时该条目仍为“退回修改”，转入下月审核")
               for i in sorted(items, key=lambda i: i.item_id) if i.status == "returned"]
    ordered = sorted(signers, key=lambda s: s.sub)
    closing = MonthCertified(
        community_id=state.community_id, month=cmd.month, count=len(awards), total=sum(a.points for a in awards),
        digest=digest, signed_by=tuple(s.sub for s in ordered), certified_at=cmd.now,
        signer_names=tuple(s.name or s.sub for s in ordered),
    )
    return [signed, *carried, *awards, closing]


def valid_signers(state: ReviewState, month: str, digest: str) -> list[Signer]:
    """Who has signed this digest (signatures on an older list no longer count)."""
    seen: dict[str, Signer] = {}
    for s in state.month(month).signatures:
        if s.digest == digest:
            seen.setdefault(s.signer.sub, s.signer)
    return list(seen.values())


def still_needed(signers: Sequence[Signer], items: Sequence[Item], quorum: int) -> str:
    """What the quorum still lacks, in words for the page; empty when the month can be certified."""
    subs = {s.sub for s in signers}
    if not any(s.role == "secretary" for s in signers):
        return "还需第一责任人（党委书记）签署"
    if len(subs) < quorum:
        return f"还需 {quorum - len(subs)} 名其他领导小组成员签署"
    own = [i.item_id for i in items if i.status == "verified" and sum(1 for s in subs if not i.by(s)) < quorum]
    if own:
        return (f"有 {len(own)} 个条目由签署人本人申报或录入，签署人不能认定自己的条目，"
                f"还需另一名领导小组成员签署")
    return ""


def next_open_month(state: ReviewState, month: str) -> str:
    """Where a carried item goes: the first month after its own that is not certified."""
    certified = state.certified_months()
    target = next_month(month)
    while target in certified:
        target = next_month(target)
    return target


def _member(signer: Signer, community_id: str) -> None:
    if signer.role not in LEADING_ROLES:
        raise Rejected(f"{signer.name or signer.sub} 不是领导小组成员，不能签署认定", status=403, code="not_a_member")
    if signer.community != community_id:
        raise Rejected(f"{signer.name or signer.sub} 不是本社区领导小组成员", status=403, code="forbidden_community")
