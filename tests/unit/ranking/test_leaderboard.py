"""Kept leaderboard answers: sent again until a change is announced; never a refusal, never a stale read."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import Message

from services.ranking.leaderboard import Answers, KeptLeaderboards


class Route:
    """Stands in for the app: answers each request with the next body and status, counting calls."""

    def __init__(self, status: int = 200, during: Any = None) -> None:
        self.calls, self.status, self.during = 0, status, during

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        if self.during:
            self.during()
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": f'{{"call": {self.calls}}}'.encode()})


def get(app: KeptLeaderboards, query: bytes = b"scope=county&category=resident&period=2026-11",
        path: str = "/rankings") -> tuple[int, bytes]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app({"type": "http", "method": "GET", "path": path, "query_string": query}, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def listening() -> Answers:
    answers = Answers()
    answers.listening = True
    return answers


def test_given_an_answer_when_asked_again_then_it_is_sent_without_the_route() -> None:
    route, answers = Route(), listening()
    app = KeptLeaderboards(route, answers)
    assert get(app) == (200, b'{"call": 1}')
    assert get(app) == (200, b'{"call": 1}')
    assert route.calls == 1
    assert get(app, b"scope=c-01&category=resident&period=2026-11") == (200, b'{"call": 2}')


def test_given_a_kept_answer_when_a_change_is_announced_then_the_route_answers_again() -> None:
    route, answers = Route(), listening()
    app = KeptLeaderboards(route, answers)
    get(app)
    answers.changed()
    assert get(app) == (200, b'{"call": 2}')


def test_given_a_change_announced_while_reading_then_that_answer_is_not_kept() -> None:
    answers = listening()
    route = Route(during=answers.changed)
    app = KeptLeaderboards(route, answers)
    get(app)
    get(app)
    assert route.calls == 2


def test_given_a_refusal_or_no_listener_or_another_path_then_nothing_is_kept() -> None:
    refused = Route(status=404)
    app = KeptLeaderboards(refused, listening())
    get(app)
    get(app)
    deaf = Route()
    app_deaf = KeptLeaderboards(deaf, Answers())
    get(app_deaf)
    get(app_deaf)
    other = Route()
    app_other = KeptLeaderboards(other, listening())
    get(app_other, path="/subjects/s1/ranks")
    get(app_other, path="/subjects/s1/ranks")
    assert (refused.calls, deaf.calls, other.calls) == (2, 2, 2)


def test_given_an_expired_answer_being_read_again_then_the_others_get_the_kept_one() -> None:
    route, answers = Route(), listening()
    app = KeptLeaderboards(route, answers)
    get(app)
    key = b"scope=county&category=resident&period=2026-11"
    answers.kept[key] = (0.0, answers.kept[key][1])  # expired
    answers.reading.add(key)  # while one request reads it again
    assert get(app) == (200, b'{"call": 1}')
    answers.reading.clear()
    assert get(app) == (200, b'{"call": 2}')
    assert route.calls == 2
