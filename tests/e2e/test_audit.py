"""The auditor's tools against a running county: the services as processes, the demo's story over
HTTP, and ``points-audit`` (``python -m shared.audit``) as the read-only auditor.

- "As of": each read model's rows recorded at moments of the story equal a replay as of each moment.
- Replayed to where the live models stand, every read model equals its live table row by row.
- An event altered in a store and a record forged on a topic are named, and the exit status is 1.
- Two exports of a month are byte-identical; the documented shell command recomputes the digest.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

import deploy.demo as demo_story
from deploy import credentials
from deploy.local import settings_env
from shared.audit import diff
from shared.audit.evidence import DIGEST_COMMAND
from shared.envelope import encode_body, headers, link_hash
from shared.events.review import MonthCertified
from shared.kafka import client_config
from shared.settings import Settings
from shared.topics import REVIEW, acl_bindings, create_acls
from shared.verify import read_topic
from tests.e2e.test_demo_conformance import all_published
from tests.support.services import RunningService, running_service
from tests.support.settings import as_principal, create_database

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("declarations", "review", "ranking", "exchange")


def audit(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = env | {"PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "shared.audit", "--env-file", "/nonexistent", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)


def in_shell(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, shell=True, cwd=cwd, capture_output=True, text=True, timeout=30)


Moment = tuple[dt.datetime, dict[tuple[str, str], diff.Snapshot]]


async def moment(services: list[RunningService], dsn: dict[str, str]) -> Moment:
    """Wait until every relay and projection is idle, then record every read model and the time."""
    all_published(services)
    at = dt.datetime.now(dt.UTC)
    shots = {(name, p.name): await diff.snapshot(p, dsn[name]) for name in SERVICES for p in diff.read_models(name)}
    time.sleep(1.1)  # what happens next is recorded strictly after ``at``
    return at, shots


async def test_the_auditor_replays_verifies_and_exports_a_county_month(settings: Settings, tmp_path: Path) -> None:
    dsn = {name: await create_database(settings, name) for name in SERVICES}
    audit_dsn = await create_database(settings, "audit")
    auditor = as_principal(settings, credentials.AUDITOR)
    if credentials.from_env() is not None and settings.kafka_sasl_username == credentials.ADMIN:
        await create_acls(settings, acl_bindings(settings, services=(), auditor=credentials.AUDITOR))
    env = settings_env(auditor.model_copy(update={"service_name": "auditor"}))
    env.pop("POINTS_SECRETS_FILE", None)  # the auditor's credential only
    env |= {f"{n.upper()}_DATABASE_URL": dsn[n] for n in SERVICES} | {"AUDIT_DATABASE_URL": audit_dsn}

    moments: list[Moment] = []
    with contextlib.ExitStack() as stack:
        services = [stack.enter_context(running_service(name, settings.model_copy(
            update={"database_url": dsn[name]}))) for name in SERVICES]
        url = {s.name: s.url for s in services}
        demo_story.DECLARATIONS_URL, demo_story.REVIEW_URL = url["declarations"], url["review"]
        story = demo_story.Demo()

        # given a scripted history, recorded at four moments
        story.roster()
        moments.append(await moment(services, dsn))
        expected = story.last_month()
        moments.append(await moment(services, dsn))
        story.certify_last_month(expected)
        moments.append(await moment(services, dsn))
        story.this_month()
        moments.append(await moment(services, dsn))

        # when each moment is replayed "as of" its time, then every read model is what it was
        scratch = auditor.model_copy(update={"database_url": audit_dsn})
        for at, shots in moments:
            for (name, model), shot in shots.items():
                projection = next(p for p in diff.read_models(name) if p.name == model)
                events, rows = await diff.replayed(projection, scratch, shot.keys, until=at)
                assert diff.differences(projection, shot.rows, rows) == [], (name, model, at)
                print(f"as of {at.isoformat(timespec='seconds')}: {name}/{model} "
                      f"{sum(len(r) for r in rows.values())} rows from {events} events, equal")

        # when replayed beside the live models, up to where they stand, then equal row by row
        replayed = audit(["replay", "--json"], env)
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        report = json.loads(replayed.stdout)
        assert report["ok"] and report["compared_to_live_offsets"] and report["models"], report
        assert all(m["same"] and sum(m["rows_live"].values()) == sum(m["rows_replay"].values())
                   for m in report["models"]), report

        # the month's evidence, twice: byte-identical, and the shell recomputes its digest
        month = story.last
        digests = []
        for n in (1, 2):
            folder = str(tmp_path / f"pack{n}")
            exported = audit(["export", demo_story.COMMUNITY, month, "--out", folder, "--json"], env)
            assert exported.returncode == 0, exported.stdout + exported.stderr
            digests.append(json.loads(exported.stdout)["digest"])
        one, two = ({p.name: p.read_bytes() for p in (tmp_path / f"pack{n}").iterdir()} for n in (1, 2))
        assert one == two and digests[0] == digests[1]
        assert {"items.csv", "notices.csv", "objections.csv", "corrections.csv", "pack.json", "SHA256SUMS"} <= set(one)
        shell = in_shell(DIGEST_COMMAND, tmp_path / "pack1")
        assert shell.returncode == 0, shell.stdout + shell.stderr
        assert shell.stdout.strip().splitlines()[-1].split()[0] == digests[0]
        pack: dict[str, Any] = json.loads(one["pack.json"])
        assert pack["certification"]["count"] == len(pack["items"]) == expected
        assert "徐科品" in one["items.csv"].decode("utf-8-sig")  # names, not only ids

        explained = audit(["explain", "p-xu", "--json"], env)
        assert explained.returncode == 0, explained.stderr
        xu = json.loads(explained.stdout)
        assert xu["name"] == "徐科品" and xu["certified_points"] == sum(
            line["points"] for line in xu["lines"] if line["certified_in"]) > 0
        assert all(line["signed_by"] and line["decisions"] for line in xu["lines"] if line["certified_in"])

        verified = audit(["verify", "--json"], env)
        assert verified.returncode == 0, verified.stdout + verified.stderr

    # when an event is altered in the review store, then it is named and the exit status is 1
    conn = await asyncpg.connect(dsn["review"])
    try:
        await conn.execute("update events set actor = 'intruder' where log_position = 3")
    finally:
        await conn.close()
    altered = audit(["verify", "--service", "review", "--json"], env)
    assert altered.returncode == 1, altered.stdout + altered.stderr
    first = json.loads(altered.stdout)["chains"]["review"]["problems"][0]
    assert first["position"] == 3 and "actor" in first["detail"], first

    # when a certification is forged on the review topic (by someone holding a broker credential),
    # then the chain names it and the month's check refuses it
    links, _, _ = await read_topic(auditor, REVIEW.name(settings))
    head = max(links, key=lambda link: link.position)
    forged_id = uuid.uuid4()
    forged = MonthCertified(community_id=demo_story.COMMUNITY, month="2026-01", count=5, total=500, digest="0" * 64,
                            signed_by=("sec",), certified_at=dt.datetime(2026, 2, 1, tzinfo=dt.UTC))
    body = encode_body(forged)
    source = head.fields[2].decode()
    fields: dict[str, Any] = dict(
        position=head.position + 1, prev_hash=head.hash.decode(), event_id=forged_id,
        type_name=MonthCertified.type_name(), source=source, subject=f"community-{demo_story.COMMUNITY}",
        version=999, time=dt.datetime(2026, 2, 1, tzinfo=dt.UTC), actor="sec", correlation_id=forged_id,
        causation_id=None, key=demo_story.COMMUNITY, body=body)
    producer = AIOKafkaProducer(**client_config(settings))  # the test's admin credential
    await producer.start()
    try:
        await producer.send_and_wait(REVIEW.name(settings), value=body, key=demo_story.COMMUNITY.encode(),
                                     headers=headers(
            event_id=forged_id, source=source, type_name=MonthCertified.type_name(),
            stream_id=fields["subject"], version=999, time=fields["time"], actor="sec", correlation_id=forged_id,
            causation_id=None, prev_hash=fields["prev_hash"], digest=link_hash(**fields),
            position=fields["position"], key=demo_story.COMMUNITY))
    finally:
        await producer.stop()
    forged_run = audit(["verify", "--service", "review", "--json"], env)
    assert forged_run.returncode == 1
    result = json.loads(forged_run.stdout)
    assert any(p["event_id"] == str(forged_id) and p["kind"] == "inserted"
               for p in result["chains"]["review"]["problems"]), result["chains"]["review"]["problems"]
    refused = [m for m in result["months"] if not m["ok"]]
    assert [(m["month"], m["count"], m["awards"]) for m in refused] == [("2026-01", 5, 0)], refused
    human = audit(["verify", "--service", "review"], env)
    assert human.returncode == 1 and "2026-01" in human.stdout and "不一致" in human.stdout, human.stdout
    print(human.stdout)


@pytest.mark.parametrize(("args", "overrides", "words"), [
    (["explain", "p-xu"], {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}, "无法连接 Kafka（127.0.0.1:1）"),
    (["verify", "--service", "review"], {"REVIEW_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/points"},
     "无法连接 PostgreSQL"),
    (["verify", "--service", "review"], {}, "未配置 REVIEW_DATABASE_URL"),
    (["export", "c-01", "2026-13"], {}, "月份格式不对"),
    (["replay", "--as-of", "2026-11-30T23:59:59"], {"AUDIT_DATABASE_URL": "postgresql://x@127.0.0.1:1/a"},
     "时间需要带时区"),
])
def test_given_nothing_to_reach_or_a_wrong_argument_then_one_line_in_chinese_and_exit_2(
    args: list[str], overrides: dict[str, str], words: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")} | overrides
    done = audit(args, env)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in done.stderr, done.stderr
