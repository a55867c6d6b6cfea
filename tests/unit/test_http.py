"""The HTTP edge: bodies that are too large, unparsable or carry NUL get a clear 4xx, in zh-CN."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from shared import http

pytestmark = pytest.mark.unit


class Note(BaseModel):
    text: str
    count: int = 1


def given_an_app() -> TestClient:
    app = FastAPI()
    http.install(app, max_body_bytes=1000)

    @app.post("/notes")
    def post_note(note: Note) -> dict[str, str]:
        return {"text": note.text}

    return TestClient(app)


@pytest.mark.parametrize(("body", "status", "code"), [
    (b'{"text": "ok"}', 200, None),
    (b'{"text": "a\\u0000b"}', 422, "text_unstorable"),
    (b'{"text": "a\x00b"}', 422, "text_unstorable"),
    (b'{"text": "' + b"x" * 2000 + b'"}', 413, "body_too_large"),
    (b'{"text": ', 400, "json_invalid"),
    (b"\xff\xfe", 400, "json_invalid"),
    (b'{"text": "x", "count": 1.5}', 422, "invalid_request"),
    (b'{"text": "x", "extra": 1}', 200, None),
])
def test_a_body_gets_the_answer_its_content_deserves(body: bytes, status: int, code: str | None) -> None:
    r = given_an_app().post("/notes", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    if code:
        assert r.json()["error"] == code and r.json()["reason"]


def test_a_body_streamed_without_a_length_is_still_limited() -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"text": "'
        for _ in range(20):
            yield b"x" * 100
        yield b'"}'

    r = given_an_app().post("/notes", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "body_too_large"


def test_a_validation_error_names_the_field_in_chinese() -> None:
    r = given_an_app().post("/notes", json={"count": "many"})
    assert r.status_code == 422
    assert "text：缺少必填字段" in r.json()["reason"] and "count：应为整数" in r.json()["reason"]


class Person(BaseModel):
    name: http.Name
    born: http.SchemeDate
    quantity: int = 1


def given_a_person_app() -> TestClient:
    app = FastAPI()
    http.install(app, max_body_bytes=1000)

    @app.post("/people")
    def post_person(p: Person) -> dict[str, str]:
        return {"name": p.name}

    return TestClient(app)


def chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text) and "Input should" not in text


@pytest.mark.parametrize("raw", [b'{"name": "a", "born": "2026-01-01", "quantity": NaN}',
                                 b'{"name": "a", "born": "2026-01-01", "quantity": Infinity}',
                                 b'{"name": "a", "born": "2026-01-01", "quantity": "many"}'])
def test_every_validation_message_is_chinese(raw: bytes) -> None:
    r = given_a_person_app().post("/people", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"
    assert chinese(r.json()["reason"]) and all(chinese(p["problem"]) for p in r.json()["detail"]["problems"])


@pytest.mark.parametrize("born", ["0001-01-01", "2099-06-01", "9999-12-31"])
def test_a_date_outside_the_schemes_life_is_refused(born: str) -> None:
    r = given_a_person_app().post("/people", json={"name": "张三", "born": born})
    assert r.status_code == 422 and "2016-01-01" in r.json()["reason"], r.text


@pytest.mark.parametrize(("name", "ok"), [
    ("  张三 ", "张三"), ("e\u0301", "\u00e9"), ("\u200b\u200b", None), ("", None), ("a\u0007b", None),
    ("\ufeff", None), ("   ", None),
])
def test_a_name_is_nfc_trimmed_and_never_blank_or_control(name: str, ok: str | None) -> None:
    r = given_a_person_app().post("/people", json={"name": name, "born": "2026-01-01"})
    if ok is None:
        assert r.status_code == 422 and chinese(r.json()["reason"]), r.text
    else:
        assert r.status_code == 200 and r.json()["name"] == ok


def test_json_sent_as_text_plain_gets_415() -> None:
    r = given_an_app().post("/notes", content=b'{"text": "ok"}', headers={"content-type": "text/plain"})
    assert r.status_code == 415 and r.json()["error"] == "unsupported_media_type"


def test_the_openapi_document_declares_the_error_schema_statuses_and_bearer() -> None:
    doc = given_an_app().get("/openapi.json").json()
    op = doc["paths"]["/notes"]["post"]
    assert set(op["responses"]) >= {"200", "400", "401", "403", "404", "409", "413", "415", "422"}
    assert op["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"}
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert op["security"] == [{"bearer": []}]


def test_an_unknown_path_answers_the_error_schema() -> None:
    r = given_an_app().get("/nowhere")
    assert r.status_code == 404 and set(r.json()) == {"error", "reason"} and chinese(r.json()["reason"])


def test_a_wrong_method_is_answered_with_every_method_of_the_path() -> None:
    app = FastAPI()
    http.install(app, max_body_bytes=1000)

    @app.get("/things")
    def list_things() -> dict[str, str]:
        return {}

    @app.post("/things")
    def add_thing() -> dict[str, str]:
        return {}

    r = TestClient(app).request("OPTIONS", "/things")
    assert r.status_code == 405 and r.headers.get_list("allow") == ["GET, POST"]
    assert r.json()["error"] == "method_not_allowed"
