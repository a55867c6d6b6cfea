"""The exchange service's own state in Postgres, and the one way events change it (``apply``).

The same tables serve the counter's decisions (row locks on ``balances`` and ``stock``) and the
read model (statistics, the donor report): certified awards are applied into the very balance
row a redemption locks, so a decision always sees one consistent view.

Every change is keyed by a domain id (redemption, donation, change, correction, item, month), so
applying an event twice changes nothing: the command path applies its own events in its
transaction, and the projection re-applies them from the exchange topic as no-ops; a rebuild
into an empty scratch schema applies them for real. Counters (received, redeemed…) are upserts,
so the result does not depend on the order partitions are read in.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
import orjson

from services.exchange.domain.member_code import member_code
from shared.events import Event
from shared.events.declarations import (
    CommunityRegistered,
    DeclarationSubmitted,
    DeductionRecorded,
    SubjectCategoriesChanged,
    SubjectMovedOut,
    SubjectRegistered,
)
from shared.events.exchange import (
    ItemListed,
    LimitsChanged,
    PriceChanged,
    Redeemed,
    RedemptionReturned,
    StockReceived,
)
from shared.events.review import (
    ItemRejected,
    MonthCertified,
    PointsAwarded,
    PointsCorrected,
    VerificationOverruled,
    certification_check,
)
from shared.logging import get_logger

log = get_logger("exchange.tables")
HELD_CHECK = certification_check("held_awards")  # a month's held awards against its MonthCertified

TABLES = ("members", "communities", "balances", "points_items", "held_awards", "certified_months",
          "corrections_seen", "catalogue_items", "item_prices", "item_limits", "stock", "donations",
          "redemptions", "movements", "usage")

SCHEMA = """
create table if not exists members (
    subject_id text primary key, community_id text not null, name text not null,
    categories text[] not null, member_code text not null unique, active boolean not null default true);
create table if not exists communities (community_id text primary key, name text not null);
-- spendable = awarded + corrected - redeemed + returned; a redemption locks this row
create table if not exists balances (
    subject_id text primary key, community_id text not null default '',
    awarded bigint not null default 0, corrected bigint not null default 0,
    redeemed bigint not null default 0, returned bigint not null default 0);
-- points items as review sees them: 'submitted' ones are pending (shown, not spendable)
create table if not exists points_items (
    item_id text primary key, subject_id text not null, points integer not null, state text not null);
create index if not exists points_items_pending on points_items (subject_id) where state = 'submitted';
create table if not exists held_awards (
    community_id text not null, month text not null, item_id text not null, subject_id text not null,
    category text not null, dimension text not null, rule_code text not null, points integer not null,
    primary key (community_id, month, item_id));
create table if not exists certified_months (community_id text not null, month text not null,
    primary key (community_id, month));
create table if not exists corrections_seen (correction_id text primary key);
create table if not exists catalogue_items (
    item_id text primary key, community_id text not null, name text not null, unit text not null,
    listed_by text not null);
create table if not exists item_prices (item_id text not null, effective_from timestamptz not null,
    price integer not null, primary key (item_id, effective_from));
create table if not exists item_limits (item_id text not null, effective_from timestamptz not null,
    limits jsonb not null, primary key (item_id, effective_from));
-- on the shelf = received - redeemed + returned; a redemption locks this row
create table if not exists stock (
    item_id text primary key, community_id text not null,
    received bigint not null default 0, redeemed bigint not null default 0, returned bigint not null default 0);
create table if not exists donations (
    donation_id text primary key, item_id text not null, item_name text not null, community_id text not null,
    donor text not null, quantity integer not null, received_on date not null, month text not null);
create table if not exists redemptions (
    redemption_id text primary key, community_id text not null, subject_id text not null,
    subject_name text not null, member_code text not null, lines jsonb not null, total_points integer not null,
    month text not null, counter text not null, clerk text not null, redeemed_at timestamptz not null,
    clerk_name text not null default '',
    returned_at timestamptz, return_month text, return_reason text);
create index if not exists redemptions_by_month on redemptions (community_id, month);
-- one row per basket line redeemed (+) or returned (-), in the month it happened: statistics
create table if not exists movements (
    redemption_id text not null, kind text not null, line integer not null, community_id text not null,
    month text not null, subject_id text not null, item_id text not null, item_name text not null,
    quantity integer not null, points integer not null, primary key (redemption_id, kind, line));
create index if not exists movements_by_month on movements (community_id, month);
create table if not exists usage (subject_id text not null, item_id text not null, period_key text not null,
    units integer not null, primary key (subject_id, item_id, period_key));
-- The shoppers of a batch in one round trip: their balance rows locked in subject order (every
-- batch locks balances, then stock, each in id order: no deadlock between counters), then read with
-- pending points and limit usage in fresh snapshots (each statement of a volatile function takes its
-- own under read committed), so what a transaction that held a lock wrote is seen.
create or replace function exchange_shoppers(p_codes text[], p_items text[])
returns table (subject_id text, community_id text, name text, member_code text, categories text[],
               spendable bigint, pending bigint, used jsonb)
language plpgsql volatile as $$
#variable_conflict use_column
begin
    insert into balances (subject_id, community_id)
    select m.subject_id, m.community_id from members m where m.member_code = any(p_codes) on conflict do nothing;
    perform 1 from balances b join members m on m.subject_id = b.subject_id
     where m.member_code = any(p_codes) order by b.subject_id for update of b;
    return query
    select m.subject_id, m.community_id, m.name, m.member_code, m.categories,
           (select b.awarded + b.corrected - b.redeemed + b.returned from balances b where b.subject_id = m.subject_id),
           (select coalesce(sum(p.points), 0)::bigint from points_items p
             where p.subject_id = m.subject_id and p.state = 'submitted'),
           (select coalesce(jsonb_agg(jsonb_build_array(u.item_id, u.period_key, u.units)), '[]'::jsonb)
              from usage u where u.subject_id = m.subject_id and u.item_id = any(p_items))
      from members m where m.member_code = any(p_codes);
end $$;
-- Items with their whole price and limit schedules (each in time order).
create or replace function exchange_items(p_items text[])
returns table (item_id text, community_id text, name text, unit text, prices jsonb, limits jsonb)
language sql stable as $$
    select c.item_id, c.community_id, c.name, c.unit,
           (select jsonb_agg(jsonb_build_array(p.effective_from, p.price) order by p.effective_from)
              from item_prices p where p.item_id = c.item_id),
           (select jsonb_agg(jsonb_build_array(l.effective_from, l.limits) order by l.effective_from)
              from item_limits l where l.item_id = c.item_id)
      from catalogue_items c where c.item_id = any(p_items)
$$;
-- The shelves of a batch in one round trip: stock rows locked in item order, then read with the
-- items' terms in a fresh snapshot (a price change that held the lock has committed by then).
create or replace function exchange_shelves(p_items text[])
returns table (item_id text, community_id text, name text, unit text, prices jsonb, limits jsonb, in_stock bigint)
language plpgsql volatile as $$
#variable_conflict use_column
begin
    perform 1 from stock s where s.item_id = any(p_items) order by s.item_id for update;
    return query
    select i.*, s.received - s.redeemed + s.returned from exchange_items(p_items) i join stock s using (item_id);
end $$;
"""

AWARD_FIELDS = ("community_id", "month", "item_id", "subject_id", "category", "dimension", "rule_code", "points")
_ADD_BALANCE = """insert into balances (subject_id, community_id, {col}) values ($1, $2, $3)
                  on conflict (subject_id) do update set {col} = balances.{col} + excluded.{col}"""
_ADD_STOCK = """insert into stock (item_id, community_id, {col}) values ($1, $2, $3)
                on conflict (item_id) do update set {col} = stock.{col} + excluded.{col}"""


async def apply(conn: asyncpg.Connection, events: Sequence[Event]) -> None:
    """Each event through its handler, in log order; a run of points items or awards in one statement."""
    for many, run in itertools.groupby(events, key=lambda ev: _RUNS.get(type(ev))):
        if many is not None:
            await many(conn, list(run))
            continue
        for ev in run:
            if (handler := _HANDLERS.get(type(ev))) is not None:
                await handler(conn, ev)


async def apply_redeemed(conn: asyncpg.Connection, events: Sequence[Redeemed]) -> None:
    """Many redemptions in one statement (the counter's batch): one row per redemption, balance,
    stock row, usage key and basket line, however many redemptions share them."""
    columns: list[list[Any]] = [[] for _ in range(12)]
    for ev in events:
        for column, value in zip(columns, _redeemed_args(ev), strict=True):
            column.append(value)
    await conn.execute(_REDEEMED, *columns)


# ---- roster and pending points (declarations topic) -----------------------------------------

async def _subject(conn: asyncpg.Connection, ev: SubjectRegistered) -> None:
    await conn.execute("""insert into members values ($1, $2, $3, $4, $5, true)
                          on conflict (subject_id) do update set community_id = excluded.community_id,
                             name = excluded.name, categories = excluded.categories, active = true""",
                       ev.subject_id, ev.community_id, ev.name, list(ev.categories), member_code(ev.subject_id))
    await conn.execute("""insert into balances (subject_id, community_id) values ($1, $2)
                          on conflict (subject_id) do update set community_id = excluded.community_id""",
                       ev.subject_id, ev.community_id)


async def _categories(conn: asyncpg.Connection, ev: SubjectCategoriesChanged) -> None:
    await conn.execute("update members set categories = $2 where subject_id = $1", ev.subject_id, list(ev.categories))


async def _moved_out(conn: asyncpg.Connection, ev: SubjectMovedOut) -> None:
    await conn.execute("update members set active = false where subject_id = $1", ev.subject_id)


async def _community(conn: asyncpg.Connection, ev: CommunityRegistered) -> None:
    await conn.execute("""insert into communities values ($1, $2)
                          on conflict (community_id) do update set name = excluded.name""", ev.community_id, ev.name)


async def _submitted(conn: asyncpg.Connection, items: list[DeclarationSubmitted | DeductionRecorded]) -> None:
    last = {ev.item_id: ev for ev in items}  # one row per item (log order: the last wins, as one by one)
    await conn.execute("""insert into points_items select i, s, p, 'submitted'
                          from unnest($1::text[], $2::text[], $3::integer[]) as u(i, s, p)
                          on conflict (item_id) do update set subject_id = excluded.subject_id,
                             points = excluded.points""",
                       list(last), [ev.subject_id for ev in last.values()], [ev.points for ev in last.values()])


async def _rejected(conn: asyncpg.Connection, ev: ItemRejected | VerificationOverruled) -> None:
    if isinstance(ev, VerificationOverruled) and ev.decision != "rejected":
        await conn.execute("update points_items set state = 'submitted' where item_id = $1 and state = 'rejected'",
                           ev.item_id)
        return
    await conn.execute("""insert into points_items values ($1, '', 0, 'rejected')
                          on conflict (item_id) do update set state = 'rejected'
                          where points_items.state <> 'certified'""", ev.item_id)


# ---- certified awards and corrections (review topic) ------------------------------------------

async def _awards(conn: asyncpg.Connection, awards: list[PointsAwarded]) -> None:
    """Held until the month's ``MonthCertified`` (shared.events.review.CertifiedMonths' rule)."""
    await conn.execute(
        """insert into held_awards select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                                         $6::text[], $7::text[], $8::integer[])
           on conflict do nothing""",
        *([getattr(a, f) for a in awards] for f in AWARD_FIELDS))


async def _certified(conn: asyncpg.Connection, ev: MonthCertified) -> None:
    if not await conn.fetchval("""insert into certified_months values ($1, $2) on conflict do nothing
                                  returning true""", ev.community_id, ev.month):
        return
    held = await conn.fetchrow(HELD_CHECK, ev.community_id, ev.month)
    if (held["n"], held["total"], held["digest"]) != (ev.count, ev.total, ev.digest):
        log.error("exchange.certification_mismatch", community=ev.community_id, month=ev.month, held=held["n"])
        await conn.execute("delete from certified_months where community_id = $1 and month = $2",
                           ev.community_id, ev.month)
        return
    await conn.execute("""insert into balances (subject_id, community_id, awarded)
                          select subject_id, community_id, sum(points) from held_awards
                           where community_id = $1 and month = $2 group by subject_id, community_id
                          on conflict (subject_id) do update set awarded = balances.awarded + excluded.awarded""",
                       ev.community_id, ev.month)
    await conn.execute("""insert into points_items select item_id, subject_id, points, 'certified' from held_awards
                           where community_id = $1 and month = $2
                          on conflict (item_id) do update set state = 'certified'""", ev.community_id, ev.month)
    await conn.execute("delete from held_awards where community_id = $1 and month = $2", ev.community_id, ev.month)


async def _corrected(conn: asyncpg.Connection, ev: PointsCorrected) -> None:
    if await conn.fetchval("insert into corrections_seen values ($1) on conflict do nothing returning true",
                           ev.correction_id):
        await conn.execute(_ADD_BALANCE.format(col="corrected"), ev.subject_id, ev.community_id, ev.delta)


# ---- the supermarket's own events (exchange topic) --------------------------------------------

async def _listed(conn: asyncpg.Connection, ev: ItemListed) -> None:
    if await conn.fetchval("insert into catalogue_items values ($1,$2,$3,$4,$5) on conflict do nothing returning true",
                           ev.item_id, ev.community_id, ev.name, ev.unit, ev.listed_by):
        await _price(conn, PriceChanged(item_id=ev.item_id, community_id=ev.community_id, change_id="",
                                        price=ev.price, effective_from=ev.effective_from))
        await _limits(conn, LimitsChanged(item_id=ev.item_id, community_id=ev.community_id, change_id="",
                                          limits=ev.limits, effective_from=ev.effective_from))
        await conn.execute(_ADD_STOCK.format(col="received"), ev.item_id, ev.community_id, 0)


async def _price(conn: asyncpg.Connection, ev: PriceChanged) -> None:
    await conn.execute("""insert into item_prices values ($1, $2, $3)
                          on conflict (item_id, effective_from) do update set price = excluded.price""",
                       ev.item_id, ev.effective_from, ev.price)


async def _limits(conn: asyncpg.Connection, ev: LimitsChanged) -> None:
    await conn.execute("""insert into item_limits values ($1, $2, $3::jsonb)
                          on conflict (item_id, effective_from) do update set limits = excluded.limits""",
                       ev.item_id, ev.effective_from, ev.limits.model_dump_json())


async def _received(conn: asyncpg.Connection, ev: StockReceived) -> None:
    if await conn.fetchval("insert into donations values ($1,$2,$3,$4,$5,$6,$7,$8) on conflict do nothing "
                           "returning true", ev.donation_id, ev.item_id, ev.item_name, ev.community_id, ev.donor,
                           ev.quantity, ev.received_on, ev.received_on.strftime("%Y-%m")):
        await conn.execute(_ADD_STOCK.format(col="received"), ev.item_id, ev.community_id, ev.quantity)


def _lines_json(ev: Redeemed | RedemptionReturned) -> str:
    return orjson.dumps([line.model_dump() for line in ev.lines]).decode()


async def _redeemed(conn: asyncpg.Connection, ev: Redeemed) -> None:
    await apply_redeemed(conn, [ev])


def _redeemed_args(ev: Redeemed) -> tuple[Any, ...]:
    return (ev.redemption_id, ev.community_id, ev.subject_id, _lines_json(ev), ev.total_points, ev.month,
            ev.subject_name, ev.member_code, ev.counter, ev.clerk, ev.redeemed_at, ev.clerk_name)


async def _returned(conn: asyncpg.Connection, ev: RedemptionReturned) -> None:
    await conn.execute(_RETURNED, ev.redemption_id, ev.community_id, ev.subject_id, _lines_json(ev), ev.total_points,
                       ev.month, ev.reason, ev.returned_at)


# One statement per return: the first CTE claims it (a second application finds it claimed and
# changes nothing), the others give back points, stock, limit allowance and count it in statistics.
_RETURNED = """
with claimed as (update redemptions set returned_at = $8, return_month = $6, return_reason = $7
                 where redemption_id = $1 and returned_at is null returning 1),
     l as (select x.*, ordinality - 1 as line
           from rows from (jsonb_to_recordset($4::jsonb)
                as (item_id text, item_name text, quantity int, unit_price int, points int, period_key text))
                with ordinality as x),
     b as (insert into balances (subject_id, community_id, returned) select $3, $2, $5 from claimed
           on conflict (subject_id) do update set returned = balances.returned + excluded.returned),
     s as (insert into stock (item_id, community_id, returned)
           select l.item_id, $2, sum(l.quantity) from l, claimed group by l.item_id
           on conflict (item_id) do update set returned = stock.returned + excluded.returned),
     u as (insert into usage select $3, l.item_id, l.period_key, -sum(l.quantity) from l, claimed
           group by l.item_id, l.period_key
           on conflict (subject_id, item_id, period_key) do update set units = usage.units + excluded.units)
insert into movements
select $1, 'returned', l.line, $2, $6, $3, l.item_id, l.item_name, -l.quantity, -l.points from l, claimed
on conflict do nothing
"""


# Redemptions as a set (the counter's batch; the projection's one at a time): claimed as returns are,
# counters summed per row first (an upsert may not touch a row twice in one statement).
_REDEEMED = """
with r as (select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::text[], $7::text[],
                                $8::text[], $9::text[], $10::text[], $11::timestamptz[], $12::text[])
           as r(redemption_id, community_id, subject_id, lines, total_points, month, subject_name, member_code,
                counter, clerk, redeemed_at, clerk_name)),
     claimed as (insert into redemptions (redemption_id, community_id, subject_id, subject_name, member_code, lines,
                                          total_points, month, counter, clerk, redeemed_at, clerk_name)
                 select redemption_id, community_id, subject_id, subject_name, member_code, lines::jsonb,
                        total_points, month, counter, clerk, redeemed_at, clerk_name from r
                 on conflict do nothing returning redemption_id, community_id, subject_id, lines, total_points, month),
     l as (select c.redemption_id, c.community_id, c.subject_id, c.month, x.*, ordinality - 1 as line
           from claimed c, rows from (jsonb_to_recordset(c.lines)
                as (item_id text, item_name text, quantity int, unit_price int, points int, period_key text))
                with ordinality as x),
     b as (insert into balances (subject_id, community_id, redeemed)
           select subject_id, min(community_id), sum(total_points) from claimed group by subject_id
           on conflict (subject_id) do update set redeemed = balances.redeemed + excluded.redeemed),
     s as (insert into stock (item_id, community_id, redeemed)
           select item_id, min(community_id), sum(quantity) from l group by item_id
           on conflict (item_id) do update set redeemed = stock.redeemed + excluded.redeemed),
     u as (insert into usage select subject_id, item_id, period_key, sum(quantity) from l
           group by subject_id, item_id, period_key
           on conflict (subject_id, item_id, period_key) do update set units = usage.units + excluded.units)
insert into movements
select redemption_id, 'redeemed', line, community_id, month, subject_id, item_id, item_name, quantity, points from l
on conflict do nothing
"""

_HANDLERS: dict[type[Event], Callable[[asyncpg.Connection, Any], Awaitable[None]]] = {
    SubjectRegistered: _subject, SubjectCategoriesChanged: _categories, SubjectMovedOut: _moved_out,
    CommunityRegistered: _community,
    ItemRejected: _rejected, VerificationOverruled: _rejected, MonthCertified: _certified,
    PointsCorrected: _corrected, ItemListed: _listed, PriceChanged: _price, LimitsChanged: _limits,
    StockReceived: _received, Redeemed: _redeemed, RedemptionReturned: _returned,
}
# a run of these in a row is applied in one statement
_RUNS: dict[type[Event], Callable[[asyncpg.Connection, list[Any]], Awaitable[None]]] = {
    DeclarationSubmitted: _submitted, DeductionRecorded: _submitted, PointsAwarded: _awards}
READS = (*_HANDLERS, *_RUNS)  # what apply looks at: the projection passes over the rest undecoded
