"""What an API fuzzer found (issue 10, items 9 and 10): each gets a 4xx with a Chinese reason in the
one error schema, and nothing is recorded."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.declarations.harness import ADMIN, COMMUNITY, RECORDER, InProcess, key
from tests.integration.declarations.test_roster_import import GOOD, HEADER, renamed, upload

pytestmark = pytest.mark.integration


def chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text) and "Input should" not in text


def declaration(**over: Any) -> dict[str, Any]:
    return {"community_id": COMMUNITY, "subject_id": "p-yang", "rule_code": "BUILDING_PATROL", "quantity": 1,
            "occurred_on": "2026-11-10", "channel": "oral"} | over


def subject(**over: Any) -> dict[str, Any]:
    return {"subject_id": "p-new", "kind": "person", "name": "新居民", "categories": ["resident"],
            "gender": "female"} | over


async def refused(svc: InProcess, path: str, body: dict[str, Any], auth: dict[str, str], status: int = 422,
                  code: str = "invalid_request") -> dict[str, Any]:
    before = await svc.events()
    r = await svc.post(path, body, auth)
    assert (r.status_code, r.json().get("error")) == (status, code), r.text
    assert set(r.json()) <= {"error", "reason", "detail"} and chinese(r.json()["reason"]), r.text
    assert await svc.events() == before
    return r.json()  # type: ignore[no-any-return]


async def test_given_a_cr_only_csv_when_imported_then_it_is_read_or_refused_never_a_500(svc: InProcess) -> None:
    rows = [HEADER, *renamed(GOOD, "cr")]
    data = "\r".join(",".join(r) for r in rows).encode()
    status, answer = await upload(svc, "roster.csv", data)
    assert status == 201, answer
    status, answer = await upload(svc, "broken.csv", b'subject_id,kind\r"p-1,person\r\x00')
    assert 400 <= status < 500, answer


@pytest.mark.parametrize("day", ["0001-01-01", "2099-05-01", "9999-12-31"])
async def test_given_a_date_outside_the_schemes_life_then_refused(svc: InProcess, day: str) -> None:
    answer = await refused(svc, "/declarations", declaration(occurred_on=day), RECORDER)
    assert "2016-01-01" in answer["reason"]
    await refused(svc, "/subjects", {"community_id": COMMUNITY, "subjects": [subject(registered_on=day)]}, ADMIN)


@pytest.mark.parametrize("bad_id", ["p yang", "p/yang", "p-😀", "", "../x", "-p"])
async def test_given_an_id_outside_the_alphabet_then_refused(svc: InProcess, bad_id: str) -> None:
    await refused(svc, "/subjects", {"community_id": COMMUNITY, "subjects": [subject(subject_id=bad_id)]}, ADMIN)
    await refused(svc, "/communities", {"community_id": bad_id, "name": "新社区"}, ADMIN)


@pytest.mark.parametrize("name", ["\u200b\u200b", "   ", "a\u0007b", "\ufeff", ""])
async def test_given_a_blank_or_control_name_then_refused(svc: InProcess, name: str) -> None:
    await refused(svc, "/subjects", {"community_id": COMMUNITY, "subjects": [subject(name=name)]}, ADMIN)


async def test_given_a_name_then_it_is_stored_nfc_and_trimmed(svc: InProcess) -> None:
    r = await svc.post("/subjects", {"community_id": COMMUNITY, "subjects": [
        subject(subject_id="p-nfc", name="  Jose\u0301 ")]}, ADMIN)
    assert r.status_code == 201, r.text
    r = await svc.http.get("/subjects", params={"community_id": COMMUNITY, "q": "p-nfc"}, headers=RECORDER)
    assert r.json()["items"][0]["name"] == "Jos\u00e9"


async def test_given_an_empty_county_then_refused(svc: InProcess) -> None:
    await refused(svc, "/communities", {"community_id": "c-empty", "name": "新社区", "county": ""}, ADMIN)


async def test_given_nan_as_a_quantity_then_the_reason_is_chinese(svc: InProcess) -> None:
    before = await svc.events()
    raw = b'{"community_id": "c-hz01", "subject_id": "p-yang", "rule_code": "BUILDING_PATROL", "quantity": NaN, ' \
          b'"occurred_on": "2026-11-10", "channel": "oral"}'
    headers = RECORDER | key() | {"content-type": "application/json"}
    r = await svc.http.post("/declarations", content=raw, headers=headers)
    assert r.status_code == 422 and chinese(r.json()["reason"]), r.text
    assert all(chinese(p["problem"]) for p in r.json()["detail"]["problems"])
    assert await svc.events() == before


@pytest.mark.parametrize("params", [{"month": "garbage"}, {"month": "2026-13"}, {"category": "wizard"}])
async def test_given_a_garbage_query_parameter_then_422(svc: InProcess, params: dict[str, str]) -> None:
    r = await svc.http.get("/rules", params=params)
    assert (r.status_code, r.json()["error"]) == (422, "invalid_request") and chinese(r.json()["reason"])


async def test_given_json_sent_as_text_plain_then_415(svc: InProcess) -> None:
    before = await svc.events()
    r = await svc.http.post("/declarations", content=b'{"community_id": "c-hz01"}',
                            headers=RECORDER | key() | {"content-type": "text/plain"})
    assert (r.status_code, r.json()["error"]) == (415, "unsupported_media_type")
    assert await svc.events() == before


async def test_given_an_unknown_subject_in_the_path_then_404(svc: InProcess) -> None:
    await refused(svc, "/subjects/p-nobody/move-out", {}, RECORDER, 404, "unknown_subject")
    await refused(svc, "/subjects/p-nobody/categories", {"categories": ["resident"]}, RECORDER, 404,
                  "unknown_subject")


async def test_given_the_openapi_document_then_it_tells_the_truth(svc: InProcess) -> None:
    doc = (await svc.http.get("/openapi.json")).json()
    csv = doc["paths"]["/ledger.csv"]["get"]["responses"]["200"]["content"]
    assert list(csv) == ["text/csv"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert set(op["responses"]) >= {"400", "401", "403", "404", "409", "413", "415", "422"}, (path, method)
            assert op["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert doc["paths"]["/declarations"]["post"]["security"] == [{"bearer": []}]
    assert doc["paths"]["/rules"]["get"]["security"] == []
