"""Monthly certification (审核认定) by the leading group, as one batch of events.

Which items: the month's verified items. While any item is still waiting for its first look the
month cannot be certified: certifying would silently push a resident's points into the
late-item path (a supervisor's correction), which is not what a leading group means by
"the month is done". Returned and rejected items are not certified (a recorder already acted on
them); a returned item fixed after certification goes through a correction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from shared.commands import Rejected
from shared.events.review import MonthCertified, PointsAwarded, ReviewEvent, certification_digest

from .model import Item, MonthState, Signer, last_day, local_date

LEADING_ROLES = ("secretary", "leading_group")


def certify(
    month: MonthState, signers: Sequence[Signer], items: Sequence[Item], *,
    now: dt.datetime, quorum: int, tz: str,
) -> list[ReviewEvent]:
    """Awards for every verified item, then the closing MonthCertified; or Rejected with the reason."""
    if month.certified_at is not None:
        raise Rejected(f"{month.month} 月已于 {month.certified_at:%Y-%m-%d %H:%M} 认定，不能重复认定",
                       status=409, code="already_certified")
    # seed: the leading group certifies on the last day of each month (Asia/Shanghai)
    end = last_day(month.month)
    if local_date(now, tz) < end:
        raise Rejected(f"{month.month} 月的认定最早在 {end:%Y-%m-%d}（当月最后一天）进行",
                       status=422, code="too_early", earliest=end.isoformat())
    members = _members(month.community_id, signers)
    if not any(s.role == "secretary" for s in members) or len(members) < quorum:
        raise Rejected(f"认定需要第一责任人（党委书记）和至少 {quorum - 1} 名其他领导小组成员共同签署",
                       status=422, code="quorum_not_met", quorum=quorum, signers=sorted(s.sub for s in members))
    waiting = [i.item_id for i in items if i.status == "submitted"]
    if waiting:
        raise Rejected(f"还有 {len(waiting)} 个条目待审核，请记录员审核完毕后再认定",
                       status=409, code="items_waiting", waiting=len(waiting), first=sorted(waiting)[:20])
    certified = [i for i in items if i.status == "verified"]
    # default rule: nobody approves an item they declared or recorded; such items need another signer
    own = [i.item_id for i in certified
           if sum(1 for s in members if s.sub not in (i.entered_by, i.declared_by)) < quorum]
    if own:
        raise Rejected(f"签署人不能认定自己申报或录入的条目（共 {len(own)} 个），请另请一位领导小组成员签署",
                       status=422, code="own_item", items=sorted(own)[:20])
    awards = [PointsAwarded(item_id=i.item_id, community_id=i.community_id, month=i.month, subject_id=i.subject_id,
                            category=i.category, dimension=i.dimension, rule_code=i.rule_code, points=i.points)
              for i in sorted(certified, key=lambda i: i.item_id)]
    closing = MonthCertified(
        community_id=month.community_id, month=month.month, count=len(awards), total=sum(a.points for a in awards),
        digest=certification_digest(awards), signed_by=tuple(sorted(s.sub for s in members)), certified_at=now,
        signer_names=tuple(s.name or s.sub for s in sorted(members, key=lambda s: s.sub)),
    )
    return [*awards, closing]


def _members(community_id: str, signers: Sequence[Signer]) -> list[Signer]:
    """Distinct leading group members of this community among the signers."""
    seen: dict[str, Signer] = {}
    for s in signers:
        if s.role not in LEADING_ROLES:
            raise Rejected(f"{s.sub} 不是领导小组成员，不能签署认定", status=403, code="not_a_member")
        if s.community != community_id:
            raise Rejected(f"{s.sub} 不是本社区领导小组成员", status=403, code="forbidden_community")
        if s.sub in seen and seen[s.sub].role != s.role:
            raise Rejected(f"{s.sub} 的签署身份不一致", status=422, code="signer_conflict")
        seen[s.sub] = s
    return list(seen.values())
