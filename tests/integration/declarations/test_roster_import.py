"""Bulk roster import from CSV and .xlsx: all or nothing, with a per-row report of what was refused."""

from __future__ import annotations

import io
import uuid

import openpyxl
import pytest

from shared.auth import Role
from tests.integration.declarations.harness import COMMUNITY, RECORDER, InProcess, key, tok

pytestmark = pytest.mark.integration

HEADER = ["编号", "类型", "姓名", "类别", "性别", "家庭", "联系人", "网格", "登记日期"]
GOOD = [
    ["f-liu", "家庭", "刘家", "家庭", "", "", "p-liu1", "", "2026-10-05"],
    ["p-liu1", "个人", "刘阿秀", "居民、志愿者", "女", "f-liu", "", f"{COMMUNITY}-vt-1", "2026-10-05"],
    ["p-liu2", "个人", "刘大山", "创业就业者；党员", "男", "f-liu", "", f"{COMMUNITY}-ws-hair", ""],
    ["o-coop", "组织", "搬迁群众合作社党小组", "安置地党支部和党小组", "", "", "", "", "2026-10-05"],
]


def csv_bytes(rows: list[list[str]], encoding: str = "utf-8-sig") -> bytes:
    return "\n".join(",".join(r) for r in [HEADER, *rows]).encode(encoding)


def xlsx_bytes(rows: list[list[str]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in [HEADER, *rows]:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def upload(svc: InProcess, name: str, data: bytes, auth: dict[str, str] = RECORDER,
                 community: str = COMMUNITY) -> tuple[int, dict[str, object]]:
    r = await svc.http.post("/roster/import", files={"file": (name, data)}, data={"community_id": community},
                            headers=auth | key())
    return r.status_code, r.json()


def renamed(rows: list[list[str]], suffix: str) -> list[list[str]]:
    out = []
    for r in rows:
        r = list(r)
        for i in (0, 5, 6):
            if r[i]:
                r[i] = f"{r[i]}-{suffix}"
        out.append(r)
    return out


async def names(svc: InProcess, q: str) -> set[str]:
    r = await svc.http.get("/subjects", params={"community_id": COMMUNITY, "q": q}, headers=RECORDER)
    return {i["subject_id"] for i in r.json()["items"]}


@pytest.mark.parametrize("fmt", ["csv", "csv-gbk", "xlsx"])
async def test_given_a_clean_roster_file_when_imported_then_every_row_is_registered(svc: InProcess, fmt: str) -> None:
    rows = renamed(GOOD, fmt)
    data = xlsx_bytes(rows) if fmt == "xlsx" else csv_bytes(rows, "gb18030" if fmt == "csv-gbk" else "utf-8-sig")
    status, answer = await upload(svc, f"roster.{fmt.split('-')[0]}", data)
    assert status == 201, answer
    assert answer["imported"] == 4 and answer["rows"] == []
    assert await names(svc, f"-{fmt}") == {f"f-liu-{fmt}", f"p-liu1-{fmt}", f"p-liu2-{fmt}", f"o-coop-{fmt}"}
    found = (await svc.http.get("/subjects", params={"community_id": COMMUNITY, "q": f"p-liu2-{fmt}"},
                                headers=RECORDER)).json()["items"][0]
    assert found["categories"] == ["employed", "party_member"] and found["family_id"] == f"f-liu-{fmt}"


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
async def test_given_bad_rows_when_imported_then_nothing_is_imported_and_each_bad_row_is_named(
    svc: InProcess, fmt: str
) -> None:
    suffix = f"bad{fmt}"
    rows = [*renamed(GOOD, suffix),
            [f"p-x1-{suffix}", "个人", "无性别", "居民", "", "", "", "", ""],  # row 6: no gender
            [f"p-x2-{suffix}", "个人", "巫师", "魔法师", "男", "", "", "", ""],  # row 7: unknown category
            ["p-xu", "个人", "重复编号", "居民", "男", "", "", "", ""],  # row 8: id already registered
            [f"p-x3-{suffix}", "个人", "日期错", "居民", "女", "", "", "", "2026-13-45"],  # row 9: bad date
            [f"p-x4-{suffix}", "个人", "网格错", "居民", "女", "", "", "no-such-cell", ""]]  # row 10: unknown cell
    before = await svc.events()
    status, answer = await upload(svc, f"roster.{fmt}", xlsx_bytes(rows) if fmt == "xlsx" else csv_bytes(rows))
    assert status == 422 and answer["error"] == "roster_rows_refused", answer
    report = answer["detail"]["rows"]  # type: ignore[index]
    assert [r["row"] for r in report] == [6, 7, 8, 9, 10]
    assert all(r["problems"] for r in report)
    assert await svc.events() == before
    assert await names(svc, suffix) == set()


@pytest.mark.parametrize(("name", "data", "code"), [
    ("roster.csv", "姓名,性别\n张三,男\n".encode(), "roster_file_unreadable"),  # missing columns
    ("roster.xlsx", b"PK\x03\x04 not really a workbook", "roster_file_unreadable"),
    ("roster.csv", "\n".join(HEADER).encode()[:0] + ",".join(HEADER).encode(), "empty_roster"),
])
async def test_given_an_unreadable_file_then_422_and_no_event(svc: InProcess, name: str, data: bytes,
                                                               code: str) -> None:
    before = await svc.events()
    status, answer = await upload(svc, name, data)
    assert status == 422 and answer["error"] == code, answer
    assert await svc.events() == before


async def test_given_a_token_of_another_community_when_importing_then_403(svc: InProcess) -> None:
    status, answer = await upload(svc, "r.csv", csv_bytes(renamed(GOOD, "x")), tok("r", Role.recorder, "c-zz"))
    assert status == 403 and answer["error"] == "forbidden_community"


async def test_given_the_same_file_and_key_twice_then_imported_once(svc: InProcess) -> None:
    data = csv_bytes(renamed(GOOD, "twice"))
    headers = RECORDER | {"idempotency-key": str(uuid.uuid4())}
    before = await svc.events()
    answers = [await svc.http.post("/roster/import", files={"file": ("r.csv", data)},
                                   data={"community_id": COMMUNITY}, headers=headers) for _ in range(2)]
    assert [a.status_code for a in answers] == [201, 201] and answers[0].json() == answers[1].json()
    assert await svc.events() == before + 4
