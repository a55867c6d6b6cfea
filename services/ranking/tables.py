"""The ranking read model (rebuilt from the log) and the service's own tables (never rebuilt)."""

from __future__ import annotations


def month_sums(months: str) -> str:
    """The scores of the (community, month)s that ``months`` (a query of such pairs) gives: their awards
    and corrections summed per subject and category, as ``rk_month_scores`` rows."""
    return f"""select community_id, month, subject_id, category, sum(points) from (
            select community_id, month, subject_id, category, points from rk_awards
            union all select community_id, month, subject_id, category, delta from rk_corrections) s
        where (community_id, month) in ({months}) group by 1, 2, 3, 4"""


READ_MODEL = f"""
create table if not exists rk_communities (community_id text primary key, name text not null);
create table if not exists rk_subjects (
    subject_id text primary key, community_id text not null, kind text not null, name text not null,
    categories text[] not null, gender text, registered_on date not null, moved_out_on date
);
create index if not exists rk_subjects_by_community on rk_subjects (community_id);
create table if not exists rk_items (
    item_id text primary key, declared_by text not null, entered_by text not null, description text not null,
    rule_title text not null, occurred_on date not null
);
create table if not exists rk_awards (
    item_id text primary key, community_id text not null, month text not null, subject_id text not null,
    category text not null, dimension text not null, rule_code text not null, points integer not null
);
create index if not exists rk_awards_by_month on rk_awards (community_id, month);
create index if not exists rk_awards_by_subject on rk_awards (subject_id);
create table if not exists rk_corrections (
    correction_id text primary key, community_id text not null, month text not null, item_id text not null,
    item_month text not null, subject_id text not null, category text not null, dimension text not null,
    delta integer not null, reason text not null, made_by text not null, made_at timestamptz not null
);
create table if not exists rk_months (
    community_id text not null, month text not null, count integer not null, total bigint not null,
    digest text not null, complete boolean not null, certified_at timestamptz not null, signed_by text[] not null,
    signer_names text[] not null, event_id uuid not null, primary key (community_id, month)
);
-- each certified month's score per subject and category (its awards and its corrections), summed when
-- the month is certified or corrected: a ranking sums a few rows per subject, not the awards
create table if not exists rk_month_scores (
    community_id text not null, month text not null, subject_id text not null, category text not null,
    score bigint not null, primary key (community_id, month, subject_id, category)
);
do $$ begin  -- an installation from before the month scores: its certified months, once
    if not exists (select from rk_month_scores) then
        insert into rk_month_scores {month_sums("select community_id, month from rk_months where complete")};
    end if;
end $$;
-- one row per ranking: its entries as parallel arrays in ranking order (ranked by rank then subject
-- id, then the not ranked by subject id). A county ranking of 200,000 is rewritten as one row, not
-- 200,000; ENTRIES reads it as rows.
create table if not exists rk_ranking_lists (
    scope text not null, category text not null, period text not null, subject_ids text[] not null,
    scores bigint[] not null, ranks integer[] not null, from_bottoms integer[] not null, not_rankeds text[] not null,
    primary key (scope, category, period)
);
-- read by key only: no statistics over millions of list elements (an ANALYZE would detoast every list);
-- stored as they come: the county's lists arrive uncompressed (services/ranking/county.py), the others
-- compressed (RANK's temporary table)
alter table rk_ranking_lists alter column subject_ids set statistics 0, alter column scores set statistics 0,
    alter column ranks set statistics 0, alter column from_bottoms set statistics 0,
    alter column not_rankeds set statistics 0, alter column subject_ids set storage external,
    alter column scores set storage external, alter column ranks set storage external,
    alter column from_bottoms set storage external, alter column not_rankeds set storage external;
create table if not exists rk_ranking_digests (
    scope text not null, category text not null, period text not null, digest text not null,
    ranked integer not null, not_ranked integer not null, months text[] not null,
    primary key (scope, category, period)
);
do $$ begin  -- an installation from before the lists: its rankings are recomputed by a rebuild
    if to_regclass('rk_rankings') is not null then drop table rk_rankings; delete from rk_ranking_digests; end if;
end $$;
-- county months whose rankings are put off while the projection is behind the log (settled when it
-- has caught up: a burst of certifications ranks the county once), with the last event that touched
-- each (the cause of the ranking events said when it settles)
create table if not exists rk_county_pending (
    month text primary key, trigger_id uuid not null, trigger_time timestamptz not null, correlation_id text not null
);
create table if not exists rk_consequences (
    community_id text not null, subject_id text not null, consequence text not null, basis text not null,
    primary key (subject_id, consequence)
);
create table if not exists rk_talks_due (
    community_id text not null, month text not null, category text not null, subject_id text not null,
    talk text not null, primary key (community_id, month, subject_id, talk)
);
create table if not exists rk_nominations (
    community_id text not null, month text not null, award text not null, subject_id text not null,
    rank integer not null, score bigint not null, primary key (community_id, month, award, subject_id)
);
"""
LISTS = ("subject_ids", "scores", "ranks", "from_bottoms", "not_rankeds")


def entries(first: str = "") -> str:
    """A ranking's entries as rows, ``from rk_ranking_lists l cross join lateral {entries()}``; ``first``
    (a parameter such as ``$4``): only the first that many, the top."""
    lists = ", ".join(f"l.{c}[:{first}]" if first else f"l.{c}" for c in LISTS)
    return f"unnest({lists}) with ordinality as e(subject_id, score, rank, from_bottom, not_ranked, position)"


ENTRIES = entries()
TABLES = ("rk_communities", "rk_subjects", "rk_items", "rk_awards", "rk_corrections", "rk_months", "rk_month_scores",
          "rk_ranking_lists", "rk_ranking_digests", "rk_county_pending", "rk_consequences", "rk_talks_due",
          "rk_nominations")

# What the live runner last appended to the ranking log: not part of the read model (a rebuild never
# touches it), so a swapped-in rebuild does not make the service say again what it already said.
SERVICE = """
create table if not exists ranking_emitted (
    stream_id text primary key, digest text not null, version integer not null
);
create table if not exists consequence_emitted (
    community_id text not null, subject_id text not null, consequence text not null, basis text not null,
    primary key (subject_id, consequence)
);
create table if not exists talks_held (
    community_id text not null, month text not null, subject_id text not null, talk text not null,
    category text not null, held_by text not null, note text not null, recorded_at timestamptz not null,
    event_id uuid not null, primary key (community_id, month, subject_id, talk)
);
create table if not exists role_models (
    community_id text not null, month text not null, award text not null, subject_id text not null,
    name text not null, selected_by text not null, note text not null, recorded_at timestamptz not null,
    event_id uuid not null, primary key (community_id, month, award, subject_id)
);
"""
