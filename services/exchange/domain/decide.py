"""Pure decisions of the Love Supermarket: each returns the events to append, or a ``Rejected``
whose reason (zh-CN) the counter shows as it is. No clock, no ids, no I/O: all passed in.

Defaults (domain.md, "Spending points"): quantities are whole numbers ≥ 1 and a basket is
redeemed whole or not at all; a price or limit change applies from its stated time; limits count
units per subject, item and period; a request only pending points could cover is refused as
"pending, not spendable"; a return is of a whole redemption, by its community, at the price paid.
"""

from __future__ import annotations

from collections.abc import Mapping

from services.exchange.domain.commands import (
    ChangeLimits,
    ChangePrice,
    ListItem,
    ReceiveDonation,
    Redeem,
    ReturnRedemption,
)
from services.exchange.domain.model import Item, Redemption, Shelf, Shopper, period_key
from shared.errors import Rejected, other_community
from shared.events.exchange import (
    ItemListed,
    LimitsChanged,
    PriceChanged,
    Redeemed,
    RedeemedLine,
    RedemptionReturned,
    StockReceived,
)
from shared.vocabulary import LIMIT_PERIODS, words


def unknown_item(item_id: str) -> Rejected:
    return Rejected(f"本超市没有该商品（{item_id}）", status=404, code="item_not_found")


def list_item(command: ListItem, existing: Item | None) -> list[ItemListed] | Rejected:
    if existing is not None:
        return Rejected(f"商品编号 {command.item_id} 已存在（{existing.name}）", status=409, code="item_exists")
    if command.price < 1:
        return Rejected("兑换所需积分须为正整数", code="price_invalid")
    return [ItemListed(item_id=command.item_id, community_id=command.community_id, name=command.name,
                       unit=command.unit, price=command.price, limits=command.limits,
                       effective_from=command.effective_from, listed_by=command.by)]


def change_price(command: ChangePrice, item: Item | None) -> list[PriceChanged] | Rejected:
    if item is None:
        return unknown_item(command.item_id)
    if command.effective_from < command.now:
        return Rejected("价格调整只能从现在或将来某时起生效，不能改动已经发生的兑换", code="effective_in_past")
    return [PriceChanged(item_id=item.item_id, community_id=item.community_id, change_id=command.change_id,
                         price=command.price, effective_from=command.effective_from)]


def change_limits(command: ChangeLimits, item: Item | None) -> list[LimitsChanged] | Rejected:
    if item is None:
        return unknown_item(command.item_id)
    if command.effective_from < command.now:
        return Rejected("限制调整只能从现在或将来某时起生效", code="effective_in_past")
    return [LimitsChanged(item_id=item.item_id, community_id=item.community_id, change_id=command.change_id,
                          limits=command.limits, effective_from=command.effective_from)]


def receive_donation(command: ReceiveDonation, item: Item | None) -> list[StockReceived] | Rejected:
    if item is None:
        return unknown_item(command.item_id)
    if command.quantity < 1:
        return Rejected("捐赠数量须为正整数", code="quantity_invalid")
    return [StockReceived(item_id=item.item_id, community_id=item.community_id, item_name=item.name,
                          donation_id=command.donation_id, donor=command.donor, quantity=command.quantity,
                          received_on=command.received_on)]


def redeem(command: Redeem, shopper: Shopper, shelves: Mapping[str, Shelf]) -> list[Redeemed] | Rejected:
    """The whole basket or nothing: every line must be on this supermarket's shelf, offered today,
    open to the shopper's categories, within the per-period limit, at the price the counter showed;
    then the total must be covered by spendable points (pending points never count)."""
    if command.clerk_community not in ("*", shopper.community_id):
        return Rejected(f"该会员属于其他社区（{shopper.community_id}），请到本人所在社区的爱心超市兑换",
                        status=403, code="other_community")
    if not command.lines:
        return Rejected("请至少选择一件商品", code="basket_empty")
    wanted: dict[str, int] = {}
    for line in command.lines:
        if line.quantity < 1:
            return Rejected("数量须为正整数（至少 1 件）", code="quantity_invalid")
        wanted[line.item_id] = wanted.get(line.item_id, 0) + line.quantity
    lines: list[RedeemedLine] = []
    for line in command.lines:
        shelf = shelves.get(line.item_id)
        if shelf is None or shelf.item.community_id != shopper.community_id:
            return unknown_item(line.item_id)
        refusal = _line_refusal(command, shopper, shelf, line.seen_price, wanted[line.item_id])
        if isinstance(refusal, Rejected):
            return refusal
        price, key = refusal
        lines.append(RedeemedLine(item_id=line.item_id, item_name=shelf.item.name, quantity=line.quantity,
                                  unit_price=price, points=price * line.quantity, period_key=key))
    total = sum(line.points for line in lines)
    if total > shopper.spendable:
        if total <= shopper.spendable + max(shopper.pending, 0):
            return Rejected(f"需要 {total} 分，可用积分只有 {shopper.spendable} 分；另有 {shopper.pending} 分"
                            "尚在审核中（待认定），认定前不能使用", code="pending_not_spendable",
                            needed=total, spendable=shopper.spendable, pending=shopper.pending)
        return Rejected(f"积分不足：需要 {total} 分，可用积分只有 {shopper.spendable} 分", code="balance_insufficient",
                        needed=total, spendable=shopper.spendable)
    for item_id, units in wanted.items():  # the shopper's reasons first, then the shelf's
        shelf = shelves[item_id]
        if units > shelf.in_stock:
            return Rejected(f"“{shelf.item.name}”库存不足：需要 {units}{shelf.item.unit}，只剩 {shelf.in_stock}"
                            f"{shelf.item.unit}", status=409, code="out_of_stock", in_stock=shelf.in_stock)
    return [Redeemed(redemption_id=command.redemption_id, community_id=shopper.community_id,
                     subject_id=shopper.subject_id, subject_name=shopper.name, member_code=shopper.member_code,
                     lines=tuple(lines), total_points=total, month=command.day.strftime("%Y-%m"),
                     counter=command.counter, clerk=command.clerk, redeemed_at=command.at,
                     clerk_name=command.clerk_name)]


def _line_refusal(command: Redeem, shopper: Shopper, shelf: Shelf, seen_price: int | None,
                  units: int) -> Rejected | tuple[int, str]:
    """(price in force, limit period key) of one line, or why it cannot be redeemed."""
    item = shelf.item
    price, limits = item.price_at(command.at), item.limits_at(command.at)
    if price is None or limits is None:
        return Rejected(f"“{item.name}”尚未开始兑换", code="item_not_offered_yet")
    if seen_price is not None and seen_price != price:
        return Rejected(f"“{item.name}”的兑换积分已调整为每{item.unit} {price} 分（页面显示为 {seen_price} 分），"
                        "请核对后重新确认", status=409, code="price_changed", price=price)
    if limits.categories and not set(limits.categories) & set(shopper.categories):
        return Rejected(f"“{item.name}”仅限特定类别的积分主体兑换，该会员不在其列", code="category_not_eligible")
    if limits.windows and not any(w.first_day <= command.day <= w.last_day for w in limits.windows):
        return Rejected(f"“{item.name}”今天不在兑换期内", code="outside_period")
    key = period_key(limits.period, command.day)
    if limits.per_subject is not None:
        used = shopper.used.get((item.item_id, key), 0)
        if used + units > limits.per_subject:
            return Rejected(f"“{item.name}”{words(LIMIT_PERIODS, limits.period)}每人限兑 {limits.per_subject}"
                            f"{item.unit}，本期已兑 {used}{item.unit}", code="limit_reached",
                            limit=limits.per_subject, used=used)
    return price, key


def return_redemption(command: ReturnRedemption, redemption: Redemption | None
                      ) -> list[RedemptionReturned] | Rejected:
    if redemption is None:
        return Rejected("找不到这笔兑换记录，无法退货", status=404, code="redemption_not_found")
    if command.clerk_community not in ("*", redemption.community_id):
        return other_community(redemption.community_id)
    if redemption.returned:
        return Rejected("这笔兑换已经退过货，不能重复退货", status=409, code="already_returned")
    return [RedemptionReturned(redemption_id=redemption.redemption_id, community_id=redemption.community_id,
                               subject_id=redemption.subject_id, lines=redemption.lines,
                               total_points=redemption.total_points, month=command.day.strftime("%Y-%m"),
                               reason=command.reason, clerk=command.clerk, returned_at=command.at)]
