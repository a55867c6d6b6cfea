"""Reading a roster file (CSV or .xlsx) into subject specs, with a problem list per row.

Headers may be English codes or Chinese (编号, 类型, 姓名, 类别, 性别, 家庭, 联系人, 网格, 登记日期);
values may be codes or their Chinese names. Row numbers are the file's (header = row 1).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import dataclass, field

from services.declarations.domain.catalogue import CATEGORIES
from services.declarations.domain.roster import SubjectSpec
from shared.http import SCHEME_FIRST_DAY, SCHEME_LAST_DAY, clean_name, id_problem

HEADERS = {
    "subject_id": ("subject_id", "编号"), "kind": ("kind", "类型"), "name": ("name", "姓名", "名称"),
    "categories": ("categories", "类别"), "gender": ("gender", "性别"), "family_id": ("family_id", "家庭"),
    "contact_id": ("contact_id", "联系人"), "units": ("units", "网格", "所在网格"),
    "registered_on": ("registered_on", "登记日期"),
}
KIND_NAMES = {"个人": "person", "家庭": "family", "组织": "organisation"}
GENDER_NAMES = {"女": "female", "男": "male"}
CATEGORY_NAMES = {v: k for k, v in CATEGORIES.items()} | {"物业人员": "property_staff", "保洁员": "property_staff"}
SEPARATORS = (";", "；", "、", "|", ",", "，")


class UnreadableFile(ValueError):
    pass


@dataclass
class ParsedRow:
    row: int
    spec: SubjectSpec
    problems: list[str] = field(default_factory=list)


def rows_of(data: bytes, filename: str) -> Iterator[list[str]]:
    if data[:2] == b"PK" or filename.lower().endswith(".xlsx"):
        yield from _xlsx_rows(data)
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("gb18030")  # Excel on Chinese Windows saves CSV in GBK
        except UnicodeDecodeError as exc:
            raise UnreadableFile("文件编码无法识别（请用 UTF-8 或 GBK 保存的 CSV，或 .xlsx）") from exc
    # newline=None: CR-only (old Mac Excel) and CRLF files read like LF ones
    try:
        yield from csv.reader(io.StringIO(text, newline=None))
    except csv.Error as exc:
        raise UnreadableFile("CSV 文件格式有误（请用 Excel 另存为“CSV UTF-8”后再导入）") from exc


def _xlsx_rows(data: bytes) -> Iterator[list[str]]:
    import openpyxl

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:
        raise UnreadableFile(f"无法读取 Excel 文件：{exc}") from exc
    for values in book.worksheets[0].iter_rows(values_only=True):
        yield ["" if v is None else (v.date().isoformat() if isinstance(v, dt.datetime) else str(v)) for v in values]


def _split(value: str) -> list[str]:
    for sep in SEPARATORS:
        value = value.replace(sep, " ")
    return value.split()


def parse(data: bytes, filename: str, default_registered_on: dt.date) -> list[ParsedRow]:
    rows = iter(rows_of(data, filename))
    header = [h.strip() for h in next(rows, [])]
    column = {}
    for key, names in HEADERS.items():
        for i, h in enumerate(header):
            if h in names:
                column[key] = i
    missing = [HEADERS[k][1] for k in ("subject_id", "kind", "name", "categories") if k not in column]
    if missing:
        raise UnreadableFile(f"表头缺少列：{'、'.join(missing)}")
    out = []
    for n, raw in enumerate(rows, start=2):
        if not any(c.strip() for c in raw):
            continue
        cell = {k: (raw[i].strip() if i < len(raw) else "") for k, i in column.items()}
        out.append(_row(n, cell, default_registered_on))
    return out


def _row(n: int, cell: dict[str, str], default_on: dt.date) -> ParsedRow:
    problems = []
    kind = KIND_NAMES.get(cell["kind"], cell["kind"])
    categories = tuple(CATEGORY_NAMES.get(c, c) for c in _split(cell["categories"]))
    gender = GENDER_NAMES.get(cell.get("gender", ""), cell.get("gender") or None)
    registered_on = default_on
    if cell.get("registered_on"):
        try:
            registered_on = dt.date.fromisoformat(cell["registered_on"][:10])
        except ValueError:
            problems.append(f"登记日期 {cell['registered_on']!r} 不是 YYYY-MM-DD")
    name, problem = clean_name(cell["name"])
    problems += [p for p in (problem, id_problem(cell["subject_id"])) if p]
    for other in ("family_id", "contact_id"):
        if cell.get(other) and (problem := id_problem(cell[other])):
            problems.append(problem)
    if registered_on < SCHEME_FIRST_DAY or registered_on > SCHEME_LAST_DAY:
        problems.append(f"登记日期 {registered_on} 应在 {SCHEME_FIRST_DAY} 至 {SCHEME_LAST_DAY} 之间")
    spec = SubjectSpec(subject_id=cell["subject_id"], kind=kind, name=name, categories=categories,
                       registered_on=registered_on, gender=gender, family_id=cell.get("family_id") or None,
                       contact_id=cell.get("contact_id") or None, units=tuple(_split(cell.get("units", ""))))
    return ParsedRow(n, spec, problems)
