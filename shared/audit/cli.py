"""``points-audit``: the auditor's command line (also ``python -m shared.audit``).

Run it with the read-only ``auditor`` Kafka credential. Where things are comes from the
environment (``KAFKA_*``, ``TOPIC_NAMESPACE``, ``<SERVICE>_DATABASE_URL`` for each service's
database, ``AUDIT_DATABASE_URL`` for the auditor's own scratch database; with community sites,
``SITES`` and ``SITE_<NAME>_DATABASE_URL`` for each site's store) or from an env file:
``make up`` writes ``.stack/audit.env`` (mode 600), read by default when it exists.

Every command takes ``--json``; the exit status is 1 on any discrepancy, 2 when Kafka or
PostgreSQL cannot be reached or the input is wrong (one line on stderr, never a traceback).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import sys
from collections.abc import Awaitable
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar
from zoneinfo import ZoneInfo

import asyncpg
import orjson
import typer
from aiokafka.errors import KafkaError
from dotenv import load_dotenv
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared import verify as chain
from shared.audit import diff, evidence, explain, months, standing
from shared.audit.log import Log, read_log
from shared.envelope import site_source
from shared.events import load_catalogue
from shared.logging import configure_logging
from shared.settings import Settings, get_settings
from shared.sites import SITE_SERVICE, Site, registry
from shared.topics import BY_SERVICE

app = typer.Typer(help="审计工具：校验日志、重放比对、解释积分、导出证据包。", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
out = Console(width=None if sys.stdout.isatty() else 200)  # a pipe or file: no folding of long lines
err = Console(stderr=True)
T = TypeVar("T")
SERVICES = tuple(BY_SERVICE)
DEFAULT_ENV = Path(".stack/audit.env")


class Unreachable(Exception):
    pass


@app.callback()
def _env(env_file: Annotated[Path, typer.Option(help="环境变量文件（make up 生成 .stack/audit.env）")]
         = DEFAULT_ENV) -> None:
    if env_file.exists():
        load_dotenv(env_file, override=False)
    configure_logging("auditor", level=logging.WARNING)  # the services' log lines to stderr: stdout is the report
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # its retries are not the auditor's business
    load_catalogue()


def settings() -> Settings:
    return get_settings().model_copy(update={"service_name": "auditor"})


def service_dsn(service: str) -> str:
    dsn = os.environ.get(f"{service.upper()}_DATABASE_URL")
    if not dsn:
        fail(f"未配置 {service.upper()}_DATABASE_URL（{service} 服务的数据库）")
    return dsn


def site_dsn(site: Site) -> str:
    var = f"SITE_{site.name.upper().replace('-', '_')}_DATABASE_URL"
    dsn = os.environ.get(var)
    if not dsn:
        fail(f"未配置 {var}（社区站点 {site.name} 的数据库）")
    return dsn


def chains(services: list[str], s: Settings) -> list[tuple[str, str, list[str] | None]]:
    """Each chain to verify: (name, its store, its sources or None for the store's own). The declarations
    topic holds the county's declarations chain (when it runs one: DECLARATIONS_DATABASE_URL, or no
    sites) and one chain per registered community site (``declarations/<site>``, SITE_<NAME>_DATABASE_URL)."""
    out: list[tuple[str, str, list[str] | None]] = []
    sites = registry(s)
    for name in services:
        if name != SITE_SERVICE or not sites or os.environ.get(f"{name.upper()}_DATABASE_URL"):
            out.append((name, service_dsn(name), None))
        if name == SITE_SERVICE:
            out += [(f"{name}/{site.name}", site_dsn(site), [site_source(site.name, s)]) for site in sites]
    return out


def unverified_sources(reports: dict[str, chain.Report]) -> dict[str, dict[str, int]]:
    """Records on a topic that belong to none of the chains verified on it (an unregistered site, a forger
    with another source), by topic (service) and source."""
    out: dict[str, dict[str, int]] = {}
    by_topic: dict[str, list[chain.Report]] = {}
    for name, report in reports.items():
        by_topic.setdefault(name.partition("/")[0], []).append(report)
    for topic, found in by_topic.items():
        covered = {x for r in found for x in r.sources}
        if any(not r.sources for r in found):  # a chain over every record: nothing else to account for
            continue
        stray: dict[str, int] = {}
        for r in found:
            for source, n in r.other_sources.items():
                if source not in covered:
                    stray[source] = max(stray.get(source, 0), n)
        if stray:
            out[topic] = stray
    return out


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"错误：{message}", highlight=False, markup=False, style="red", soft_wrap=True)
    raise typer.Exit(code)


def run(work: Awaitable[T]) -> T:
    """Run a coroutine; a broker or database that does not answer is one line, not a traceback."""
    s = settings()
    try:
        return asyncio.run(_bounded(work))
    except KafkaError as exc:
        fail(f"无法连接 Kafka（{s.kafka_bootstrap_servers}）：{exc}")
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        fail(f"无法连接 PostgreSQL：{exc}")
    except TimeoutError:
        fail(f"Kafka（{s.kafka_bootstrap_servers}）或 PostgreSQL 在 10 分钟内没有应答")


async def _bounded(work: Awaitable[T]) -> T:
    return await asyncio.wait_for(work, 600)


@contextmanager
def reading(label: str, quiet: bool):  # type: ignore[no-untyped-def]
    """A progress bar on stderr while the log is read (none with --json)."""
    if quiet:
        yield None
        return
    with Progress(SpinnerColumn(), TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def load(services: tuple[str, ...], quiet: bool) -> Log:
    with reading("读取日志", quiet) as progress:
        log = run(read_log(settings(), services, progress=progress))
    if log.refused and not quiet:
        err.print(f"[yellow]注意：{len(log.refused)} 条记录无法解码或来源不符，已跳过（verify 会逐条列出）[/yellow]")
    return log


def emit(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n")


@app.command("verify")
def verify_cmd(service: Annotated[list[str] | None, typer.Option(help="要校验的服务（可多次给出；默认全部）")] = None,
               as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False) -> None:
    """校验每个服务的哈希链（事件库与主题逐条对照）和每个已认定月份的条数、总分与摘要。"""
    service_given = bool(service)
    service = service or list(SERVICES)
    for name in service:
        if name not in BY_SERVICE:
            fail(f"没有名为 {name} 的服务（可选：{'、'.join(SERVICES)}）")
    s = settings()
    reports: dict[str, chain.Report] = {}
    by_topic: dict[str, dict[str, tuple[str, list[str] | None]]] = {}
    for name, dsn, sources in chains(service, s):  # the chains sharing a topic (the sites') in one read of it
        by_topic.setdefault(name.partition("/")[0], {})[name] = (dsn, sources)
    for topic_of, found in by_topic.items():
        label = next(iter(found)) if len(found) == 1 else f"{topic_of} 主题上的 {len(found)} 条链"
        with reading(f"校验 {label} 的哈希链", as_json):
            reports |= run(chain.verify_all(s, BY_SERVICE[topic_of].name(s), found))
    unverified = unverified_sources(reports) if not service_given else {}
    log = load(("review",), as_json)
    checks = months.check_months(log)
    ok = (all(r.ok for r in reports.values()) and all(c.ok for c in checks) and not log.refused
          and not unverified)
    if as_json:
        emit({"ok": ok, "chains": {n: r.as_json() for n, r in reports.items()},
              "unverified_sources": unverified,
              "months": [c.__dict__ for c in checks],
              "refused": [{"topic": t, "partition": p, "offset": o, "reason": why} for t, p, o, why in log.refused]})
    else:
        table = Table("服务", "结果", "事件库", "主题记录", "首个问题")
        for name, r in reports.items():
            first = r.problems[0] if r.problems else None
            table.add_row(name, "[green]通过[/green]" if r.ok else "[red]不通过[/red]", f"{r.store_events:,}",
                          f"{r.topic_records:,}",
                          "" if first is None
                          else escape(f"位置 {first.position}：{first.kind}（{first.where}）{first.detail}"))
        out.print(table)
        mt = Table("社区", "月份", "结果", "认定条数", "认定总分", "说明")
        for c in checks:
            mt.add_row(c.community_id, c.month, "[green]一致[/green]" if c.ok else "[red]不一致[/red]",
                       str(c.count), str(c.total), escape(c.detail))
        out.print(mt)
        for t, p, o, why in log.refused:
            out.print(f"来源不符或无法解码：{t} 分区 {p} 偏移 {o}：{why}", highlight=False, markup=False, style="red")
        for name, by_source in unverified.items():
            for source, n in by_source.items():
                out.print(f"{name} 主题上有 {n} 条记录来自未登记、未校验的来源：{source}", highlight=False,
                          markup=False, style="red")
        out.print("[green]全部一致[/green]" if ok else "[red]发现问题[/red]")
    raise typer.Exit(0 if ok else 1)


@app.command("replay")
def replay_cmd(service: Annotated[list[str] | None, typer.Option(help="重放哪些服务的读模型（默认全部）")] = None,
               as_of: Annotated[str | None, typer.Option(
                   "--as-of", help="重放到此时刻（ISO 时间，带时区，如 2026-11-30T23:59:59+08:00）")] = None,
               offsets: Annotated[str | None, typer.Option(help="重放到给定偏移：topic:partition=offset,…")] = None,
               community: Annotated[str | None, typer.Option(help="只比对该社区的行")] = None,
               as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False) -> None:
    """把日志重放到审计库的临时模式中，与线上读模型逐行比对（默认重放到线上读模型所在的偏移）。"""
    service = service or list(SERVICES)
    until: dt.datetime | None = None
    if as_of is not None:
        try:
            until = dt.datetime.fromisoformat(as_of)
        except ValueError:
            fail(f"时间格式不对：{as_of}（例：2026-11-30T23:59:59+08:00）")
        if until is None or until.tzinfo is None:
            fail("时间需要带时区，例：2026-11-30T23:59:59+08:00")
    stop = None
    if offsets:
        try:
            stop = {k: int(v) for k, v in (part.split("=") for part in offsets.split(","))}
        except ValueError:
            fail(f"偏移格式不对：{offsets}（例：points.review:0=120,points.review:1=98）")
    audit_dsn = os.environ.get("AUDIT_DATABASE_URL")
    if not audit_dsn:
        fail("未配置 AUDIT_DATABASE_URL（审计员自己的临时库）")
    s = settings().model_copy(update={"database_url": audit_dsn})
    results = []
    for name in service:
        if name not in BY_SERVICE:
            fail(f"没有名为 {name} 的服务（可选：{'、'.join(SERVICES)}）")
        for projection in diff.read_models(name):
            with reading(f"重放 {name}/{projection.name}", as_json):
                results.append(run(diff.compare(name, projection, service_dsn(name), s, until=until, offsets=stop,
                                                community=community)))
    strict = until is None and stop is None  # replayed to where the live model stands: any difference is a fault
    ok = not strict or all(r.same for r in results)
    if as_json:
        emit({"ok": ok, "compared_to_live_offsets": strict, "models": [r.as_json() for r in results]})
    else:
        table = Table("服务", "读模型", "重放到", "事件", "线上行数", "重放行数", "差异")
        for r in results:
            table.add_row(r.service, r.projection, r.stopped_at, f"{r.events:,}",
                          str(sum(r.rows_live.values())), str(sum(r.rows_replay.values())),
                          "[green]0[/green]" if r.same else f"[{'red' if strict else 'yellow'}]{len(r.differences)}[/]")
        out.print(table)
        kinds = {"only_live": "只在线上", "only_replay": "只在重放", "differs": "不同"}
        for r in results:
            for d in r.differences[:200]:
                cols = "；".join(f"{c}: 线上 {a!r} / 重放 {b!r}" for c, (a, b) in d.columns.items())
                out.print(f"  {r.service}/{d.table} [{d.key}] {kinds[d.kind]} {cols}", highlight=False, markup=False)
        out.print(("[green]与线上读模型逐行一致[/green]" if ok else "[red]与线上读模型不一致[/red]") if strict
                  else "（按时刻或给定偏移重放：差异是此后的变化，不算问题）")
    raise typer.Exit(0 if ok else 1)


@app.command("explain")
def explain_cmd(subject_id: Annotated[str, typer.Argument(help="积分主体编号")],
                date: Annotated[str | None, typer.Option(help="截至哪一天（YYYY-MM-DD，县里的日期；默认今天）")] = None,
                as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False) -> None:
    """解释一个积分主体在某一天的积分：每条事件、录入人、渠道、审核人和使之生效的认定。"""
    tz = settings().timezone
    try:
        day = dt.date.fromisoformat(date) if date else dt.datetime.now(ZoneInfo(tz)).date()
    except ValueError:
        fail(f"日期格式不对：{date}（例：2026-11-30）")
    log = load(SERVICES, as_json)
    x = explain.explain(log, subject_id, day, tz)
    if x is None:
        fail(f"日志中没有积分主体 {subject_id}")
    audit_dsn = os.environ.get("AUDIT_DATABASE_URL")
    if not audit_dsn:
        fail("未配置 AUDIT_DATABASE_URL（排名与余额要重放到审计员自己的临时库）")
    with reading("重放排名与爱心超市到当日", as_json):
        st = run(standing.standing(settings().model_copy(update={"database_url": audit_dsn}), log, subject_id,
                                   explain.end_of(day, tz)))
    if as_json:
        emit(x.as_json() | {"standing": st.as_json()})
    else:
        for line in [*explain.render(x), *standing.render(st)]:
            out.print(line, highlight=False, soft_wrap=True, markup=False)
    raise typer.Exit(0 if st.consistent else 1)


@app.command("export")
def export_cmd(community_id: Annotated[str, typer.Argument(help="社区编号")],
               month: Annotated[str, typer.Argument(help="月份 YYYY-MM")],
               out_dir: Annotated[Path | None, typer.Option(
                   "--out", help="证据包目录（默认 evidence-<社区>-<月份>）")] = None,
               as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False) -> None:
    """导出一个社区某月的证据包（CSV 与 JSON，附 SHA256SUMS 清单）。"""
    try:
        dt.datetime.strptime(month, "%Y-%m")
    except ValueError:
        fail(f"月份格式不对：{month}（例：2026-11）")
    log = load(SERVICES, as_json)
    try:
        pack = evidence.build(log, community_id, month, settings().timezone)
    except evidence.NotCertified as exc:
        fail(str(exc), 1)
    folder = out_dir or Path(f"evidence-{community_id}-{month}")
    digest = evidence.write(pack, folder)
    summary = {"folder": str(folder), "digest": digest, "check": f"cd {folder} && {evidence.DIGEST_COMMAND}",
               "items": len(pack["items"]), "total": pack["certification"]["total"],
               "objections": len(pack["objections"]), "corrections": len(pack["corrections"])}
    if as_json:
        emit(summary)
    else:
        out.print(f"证据包：{folder}（{summary['items']} 条认定，{summary['total']} 分，"
                  f"{summary['objections']} 条异议，{summary['corrections']} 条更正）", highlight=False)
        out.print(f"证据包摘要：{digest}", highlight=False)
        out.print(f"任何人可复算：{summary['check']}", highlight=False)


def main() -> None:
    app()

