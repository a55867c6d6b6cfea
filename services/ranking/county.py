"""The county's rankings, merged from the communities' rankings already stored.

A county ranking of (category, period) is the union of the community rankings of the same
(category, period), each already in ranking order. ``recompute.RANK`` joins, tallies and sorts the
county's 771,429 entries (month, quarter and year) in 6-9 s at county size; merging the stored lists
takes a fraction of that (the whole county step 1.5-2.2 s against 6.7-7.8 s, same runs). The merge
trusts the community lists only where they add up (``_untrusted``), else the county is ranked from the
rows (``recompute.rank_touched``). A property test holds the merge equal to ``domain.ranking``.
"""

from __future__ import annotations

import hashlib
import struct
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator

import asyncpg

from services.ranking.domain import periods
from services.ranking.domain.periods import Period
from services.ranking.domain.ranking import Member, not_ranked_reason
from services.ranking.recompute import Changed, Ranked, analyze_stale, certified_months, rank_touched, write_next
from shared.events.ranking import COUNTY
from shared.logging import get_logger
from shared.vocabulary import CATEGORIES

log = get_logger("ranking.county")


async def run(conn: asyncpg.Connection, months: set[str]) -> Changed:
    """Recompute the county's rankings of these months (their month, quarter and year)."""
    touched = {p for m in months for p in periods.containing(m)}
    await analyze_stale(conn)
    certified = await certified_months(conn)
    ranked = await merge(conn, touched, certified)
    if ranked is None:  # a community list does not add up: the county from the rows
        ranked = await rank_touched(conn, {COUNTY: touched}, certified)
    return Changed(ranked, {})


# The community lists are up to date where the projection keeps them so: it ranks a community again
# whenever its scores or roster change, in the same transaction (a subject re-registered elsewhere: its old
# community too, since this change; the lists of an installation from before it may still hold the subject:
# those entries are dropped). Anything else that does not add up falls back to RANK. The entries no
# community list holds right for the county are made from the rows:
#   - subjects scored (certified months of the period) in a community other than their current one: the
#     county sums every certified score, their current community's list only that community's;
#   - subjects of communities with no certified month in the period: no list holds them.

COUNTY_LISTS = """
select l.scope, l.category, l.period, d.ranked, d.months, l.subject_ids, l.scores,
       l.not_rankeds[d.ranked + 1:] as not_rankeds
from rk_ranking_lists l join rk_ranking_digests d using (scope, category, period)
where l.scope = any($1::text[]) and l.period = any($2::text[])"""

# subjects with certified scores (of the given (community, month)s) in a community not their own: an anti join
# on (subject, community), 0.15-0.18 s at county size with work_mem 64MB (a join on the subject filtered on
# the community spilled to two batches: 0.26-0.40 s)
MOVED = """
select distinct m.subject_id from rk_month_scores m
where (m.community_id, m.month) in (select * from unnest($1::text[], $2::text[]))
  and not exists (select from rk_subjects s where s.subject_id = m.subject_id and s.community_id = m.community_id)"""

# the members of each community by their categories array (a few hundred groups: 0.06 s; unnested per subject
# in SQL, 0.17-0.22 s): a community list holds every member of its category, ranked or not
MEMBERS = "select community_id, categories, count(*)::integer as n from rk_subjects group by 1, 2"

# the subjects no community list holds right: of communities not certified in every period, and the moved
OUTSIDE = """
select subject_id, community_id, categories, registered_on, moved_out_on from rk_subjects
where community_id <> all($1::text[]) or subject_id = any($2::text[])"""

# their certified scores (summed per period in Python: a few thousand rows)
OUTSIDE_SCORES = """
select community_id, month, subject_id, category, score from rk_month_scores
where subject_id = any($1::text[]) and category = any($4::text[])
  and (community_id, month) in (select * from unnest($2::text[], $3::text[]))"""

# rk_next as RANK leaves it, for WRITE; the lists stored uncompressed, as in rk_ranking_lists (compressing the
# county's 771,429 entries cost ~0.5 s of a 1.5 s step; they take 21 MB instead of 3.4 MB)
NEXT = """
create temp table rk_next (scope text, category text, period text, digest text, ranked integer, not_ranked integer,
    months text[], subject_ids text[] storage external, scores bigint[] storage external,
    ranks integer[] storage external, from_bottoms integer[] storage external, not_rankeds text[] storage external)
on commit drop"""

CountyTargets = list[tuple[Period, dict[str, list[str]]]]  # period -> {community: its months certified in it}
Fixed = dict[tuple[str, str], list[tuple[str, int, str | None]]]  # (category, period) -> (subject, score, reason)


async def merge(conn: asyncpg.Connection, touched: set[Period], certified: dict[str, set[str]]
                ) -> list[Ranked] | None:
    """The county's rankings of the touched periods merged from the community rankings, written as
    ``rank_touched`` writes them; None (nothing written) when a community list does not add up."""
    targets: CountyTargets = []
    for period in sorted(touched):
        by_community = {c: sorted(m for m in ms if m in period.months) for c, ms in certified.items()}
        if by_community := {c: ms for c, ms in by_community.items() if ms}:
            targets.append((period, by_community))
    if not targets:
        return []
    started = time.perf_counter()
    pairs = sorted({(c, m) for _, by_community in targets for c, ms in by_community.items() for m in ms})
    await conn.execute("set local work_mem = '64MB'")  # MOVED's hash of the subjects in one batch
    lists = await conn.fetch(COUNTY_LISTS, sorted({c for _, by_community in targets for c in by_community}),
                             [p.code for p, _ in targets])
    moved = {r[0] for r in await conn.fetch(MOVED, [c for c, _ in pairs], [m for _, m in pairs])}
    await conn.execute("reset work_mem")
    by_key = {(r["scope"], r["category"], r["period"]): r for r in lists}
    gone: dict[tuple[str, str], set[str]] = defaultdict(set)  # (community, period) -> subjects out of its lists
    if why := await _untrusted(conn, targets, by_key, gone):
        log.info("ranking.county_not_merged", reason=why)
        return None
    fixed = await _outside_lists(conn, targets, pairs, moved, gone)
    fetched_at = time.perf_counter()
    by_ranking: dict[tuple[str, str], list[asyncpg.Record]] = defaultdict(list)
    for (_, category, code), r in by_key.items():
        by_ranking[(category, code)].append(r)
    await conn.execute(NEXT)
    await conn.copy_to_table("rk_next", source=_copy_binary(_merged(targets, by_ranking, fixed, gone)),
                             format="binary")
    merged_at = time.perf_counter()
    ranked = await write_next(conn)
    log.info("ranking.county_merged", targets=len(targets), moved=len(moved), fetch_s=round(fetched_at - started, 3),
             merge_s=round(merged_at - fetched_at, 3), write_s=round(time.perf_counter() - merged_at, 3))
    return ranked


async def _untrusted(conn: asyncpg.Connection, targets: CountyTargets,
                     by_key: dict[tuple[str, str, str], asyncpg.Record], gone: dict[tuple[str, str], set[str]]
                     ) -> str | None:
    """Why the community lists cannot be merged, if they cannot: a list not of the months certified now, a
    certified community with members of a category and no list of it, a list that does not hold exactly the
    community's members. A list holding more (subjects re-registered elsewhere since) is repaired: its
    entries of subjects no longer in the community go (``gone``)."""
    for period, by_community in targets:
        for (scope, category, code), r in by_key.items():
            if code == period.code and list(r["months"]) != by_community.get(scope):
                return f"{scope} {category} {code} ranked for {list(r['months'])}"
    members: dict[tuple[str, str], int] = defaultdict(int)
    for r in await conn.fetch(MEMBERS):
        for category in r["categories"]:
            if category in CATEGORIES:
                members[(r["community_id"], category)] += r["n"]
    for period, by_community in targets:
        for scope, category in members:
            if scope in by_community and (scope, category, period.code) not in by_key:
                return f"{scope} {category} {period.code} not ranked"
    longer = {s for (s, c, _), r in by_key.items() if len(r["subject_ids"]) > members.get((s, c), 0)}
    if longer:
        now: dict[str, set[str]] = {scope: set() for scope in longer}
        for r in await conn.fetch("select subject_id, community_id from rk_subjects where community_id = any($1)",
                                  sorted(longer)):
            now[r["community_id"]].add(r["subject_id"])
        for (scope, _, code), r in by_key.items():
            if scope in now:
                gone[(scope, code)].update(s for s in r["subject_ids"] if s not in now[scope])
    for (scope, category, code), r in by_key.items():
        held = len(r["subject_ids"]) - len(gone.get((scope, code), set()).intersection(r["subject_ids"]))
        if held != members.get((scope, category), 0):
            return f"{scope} {category} {code} holds {held} of {members.get((scope, category), 0)} members"
    return None


async def _outside_lists(conn: asyncpg.Connection, targets: CountyTargets, pairs: list[tuple[str, str]],
                         moved: set[str], gone: dict[tuple[str, str], set[str]]) -> Fixed:
    """The county entries no community list holds right, from the rows: the moved subjects (their list entries
    added to ``gone``) and the subjects of communities with no certified month in a period."""
    everywhere = set.intersection(*(set(by_community) for _, by_community in targets))
    subjects = await conn.fetch(OUTSIDE, sorted(everywhere), sorted(moved))
    scores = await conn.fetch(OUTSIDE_SCORES, [r["subject_id"] for r in subjects], [c for c, _ in pairs],
                              [m for _, m in pairs], list(CATEGORIES))
    fixed: Fixed = defaultdict(list)
    for period, by_community in targets:
        summed: dict[tuple[str, str], int] = defaultdict(int)  # (subject, category) -> the period's score
        for s in scores:
            if s["month"] in by_community.get(s["community_id"], ()):
                summed[(s["subject_id"], s["category"])] += s["score"]
        for r in subjects:
            subject, community = r["subject_id"], r["community_id"]
            if community in by_community:
                if subject not in moved:
                    continue  # in its community's lists, right
                gone[(community, period.code)].add(subject)
            reason = not_ranked_reason(Member(subject, community, r["registered_on"], r["moved_out_on"]), period)
            for category in r["categories"]:
                if category in CATEGORIES:
                    fixed[(category, period.code)].append((subject, summed.get((subject, category), 0), reason))
    return fixed


def _merged(targets: CountyTargets, by_ranking: dict[tuple[str, str], list[asyncpg.Record]], fixed: Fixed,
            gone: dict[tuple[str, str], set[str]]) -> Iterator[bytes]:
    """The county's rankings as rk_next rows, one at a time: each is sent while the next is merged."""
    place = {c: i for i, c in enumerate(CATEGORIES)}
    for period, by_community in targets:
        months = sorted({m for ms in by_community.values() for m in ms})
        categories = {c for c, p in [*by_ranking, *fixed] if p == period.code}
        for category in sorted(categories, key=place.__getitem__):
            row = _merge_ranking(category, period.code, months, by_ranking.get((category, period.code), []),
                                 fixed.get((category, period.code), []), gone)
            if row is not None:
                yield row


def _merge_ranking(category: str, code: str, months: list[str], lists: list[asyncpg.Record],
                   fixed: list[tuple[str, int, str | None]], gone: dict[tuple[str, str], set[str]]) -> bytes | None:
    """One county ranking (domain.ranking.rank and digest) from its community lists and the entries outside
    them, as a COPY binary row of rk_next; None when it has no member (RANK makes no row then)."""
    runs: dict[int, list[list[str]]] = defaultdict(list)  # score -> runs of subjects, each in code point order
    unranked: list[tuple[str, int, str]] = []
    for r in lists:
        ranked, subjects, scores = r["ranked"], r["subject_ids"], r["scores"]
        out = gone.get((r["scope"], code))
        if out and not out.isdisjoint(subjects):
            keep = [i for i, s in enumerate(subjects) if s not in out]
            unranked += [(subjects[i], scores[i], r["not_rankeds"][i - ranked]) for i in keep if i >= ranked]
            keep = [i for i in keep if i < ranked]
            subjects, scores = [subjects[i] for i in keep], [scores[i] for i in keep]
        else:
            unranked += zip(subjects[ranked:], scores[ranked:], r["not_rankeds"], strict=True)
            subjects, scores = subjects[:ranked], scores[:ranked]
        at = 0  # the ranked part is by score (desc), then subject: a score's subjects are one run, in order
        for score, n in sorted(Counter(scores).items(), reverse=True):
            runs[score].append(subjects[at:at + n])
            at += n
    for subject, score, reason in fixed:
        if reason is None:
            runs[score].append([subject])
        else:
            unranked.append((subject, score, reason))
    total = sum(len(run) for score_runs in runs.values() for run in score_runs)
    if not total + len(unranked):
        return None
    unranked.sort()  # by subject: Python compares str by code point, as collate "C"
    subjects_b, scores_b, ranks_b, bottoms_b = [], [], [], []
    h = hashlib.sha256()
    above = 0  # ranked with a greater score
    for score in sorted(runs, reverse=True):
        group = sorted(s for run in runs[score] for s in run) if len(runs[score]) > 1 else runs[score][0]
        n = len(group)
        top, bottom = above + 1, total - above - n + 1
        above += n
        subjects_b.append(_text_elements(group))
        # a score's rank and from_bottom are the same for each of its subjects: one binary element repeated
        scores_b.append(_INT8_ELEMENT.pack(8, score) * n)
        ranks_b.append(_INT4_ELEMENT.pack(4, top) * n)
        bottoms_b.append(_INT4_ELEMENT.pack(4, bottom) * n)
        line_end = f"\t{score}\t{top}\t{bottom}\tNone\n"  # domain.ranking.digest's line after the subject
        h.update((line_end.join(group) + line_end).encode())
    h.update("".join(f"{s}\t{score}\tNone\tNone\t{reason}\n" for s, score, reason in unranked).encode())
    subjects_b.append(_text_elements([s for s, _, _ in unranked]))
    scores_b.append(b"".join(_INT8_ELEMENT.pack(8, score) for _, score, _ in unranked))
    n, nulls = total + len(unranked), _NULL * len(unranked)
    cells = [COUNTY.encode(), category.encode(), code.encode(), h.hexdigest().encode(), _INT4.pack(total),
             _INT4.pack(len(unranked)), _array(_TEXT, len(months), False, _text_elements(months)),
             _array(_TEXT, n, False, b"".join(subjects_b)), _array(_INT8, n, False, b"".join(scores_b)),
             _array(_INT4_OID, n, bool(unranked), b"".join(ranks_b) + nulls),
             _array(_INT4_OID, n, bool(unranked), b"".join(bottoms_b) + nulls),
             _array(_TEXT, n, bool(total), _NULL * total + _text_elements([r for _, _, r in unranked]))]
    return struct.pack(">h", len(cells)) + b"".join(_INT4.pack(len(c)) + c for c in cells)


# COPY binary, with the arrays in PostgreSQL's binary format (array_recv): built here from bytes, a run's
# repeated elements by one multiplication. asyncpg's encoding of the same lists as parameters or records cost
# 1.3-2.2 s of client CPU at county size (its int arrays ~400 ns an element); this, 0.4-0.5 s with the merge.
_INT4, _INT8_ELEMENT, _INT4_ELEMENT = struct.Struct(">i"), struct.Struct(">iq"), struct.Struct(">ii")
_NULL = _INT4.pack(-1)
_TEXT, _INT8, _INT4_OID = 25, 20, 23  # the element types' oids


def _array(element_type: int, n: int, has_null: bool, elements: bytes) -> bytes:
    """A one-dimensional array from 1 of these n elements (each its length then its bytes; -1: null)."""
    if not n:
        return struct.pack(">iii", 0, 0, element_type)
    return struct.pack(">iiiii", 1, int(has_null), element_type, n, 1) + elements


def _text_elements(values: list[str]) -> bytes:
    return b"".join([_INT4.pack(len(b)) + b for b in map(str.encode, values)])


async def _copy_binary(rows: Iterator[bytes]) -> AsyncIterator[bytes]:
    yield b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no header extension
    for row in rows:
        yield row
    yield struct.pack(">h", -1)
