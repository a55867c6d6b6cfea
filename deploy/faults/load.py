"""A steady load of declarations through the HTTP intake API (the county's declarations service and the
site), each with its own idempotency key. Only a 201 counts: its item id is an acknowledged command."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import time
import uuid
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import httpx

from shared.auth import Principal, Role, issue_token

RULE = "VOLUNTEER_HOURS"  # 2 points an hour, 100 one-hour items per subject a month: subjects enough for a run


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    community: str
    subjects: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Ack:
    item_id: str
    at: float  # time.monotonic()
    target: str


def seed(target_url: str, community: str, subjects: int) -> Target:
    """Register the community and its volunteers through the roster API."""
    token = issue_token(Principal(sub="faults-admin", role=Role.county_admin, community="*", name="故障演练管理员"))
    ids = tuple(f"{community}-v{i:04d}" for i in range(subjects))
    with httpx.Client(base_url=target_url, headers={"authorization": f"Bearer {token}"}, timeout=60) as http:
        r = http.post("/communities", json={"community_id": community, "name": f"演练社区 {community}"},
                      headers={"idempotency-key": f"faults-{community}"})
        if r.status_code not in (200, 201):
            raise RuntimeError(f"cannot register community {community}: {r.status_code} {r.text[:500]}")
        for start in range(0, subjects, 500):
            batch = [{"subject_id": s, "kind": "person", "name": f"志愿者{i:04d}", "categories": ["volunteer"],
                      "gender": "female" if i % 2 else "male"} for i, s in enumerate(ids[start:start + 500], start)]
            r = http.post("/subjects", json={"community_id": community, "subjects": batch},
                          headers={"idempotency-key": f"faults-{community}-subjects-{start}"})
            if r.status_code not in (200, 201):
                raise RuntimeError(f"cannot register subjects of {community}: {r.status_code} {r.text[:500]}")
    return Target(community, target_url, community, ids)


@dataclass
class Load:
    targets: list[Target]
    rate: float  # declarations per second, over all targets
    timezone: str = "Asia/Shanghai"
    concurrency: int = 32
    acks: list[Ack] = field(default_factory=list)
    failures: int = 0
    in_flight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)  # set whenever nothing is in flight
    paused: asyncio.Event = field(default_factory=asyncio.Event)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def acknowledged_between(self, start: float, end: float) -> list[Ack]:
        return [a for a in self.acks if start <= a.at < end]

    async def pause(self) -> None:
        """No new declarations; returns once every request under way has its answer."""
        self.paused.set()
        if self.in_flight:
            await self.idle.wait()

    def resume(self) -> None:
        self.paused.clear()

    def first_ack_after(self, t: float) -> float | None:
        return next((a.at for a in self.acks if a.at >= t), None)

    async def run(self, stop: asyncio.Event) -> None:
        tokens = {t.name: "Bearer " + issue_token(Principal(sub=f"faults-recorder-{t.community}", role=Role.recorder,
                                                             community=t.community, name="演练记录员"))
                  for t in self.targets}
        slots = asyncio.Semaphore(self.concurrency)
        counter = itertools.count()
        pending: set[asyncio.Task[None]] = set()
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(timeout=10, limits=limits) as http:
            next_at = time.monotonic()
            while not stop.is_set():
                if self.paused.is_set():
                    await asyncio.sleep(0.1)
                    next_at = time.monotonic()
                    continue
                next_at = max(next_at + 1 / self.rate, time.monotonic() - 1.0)  # after a stall: no burst
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                n = next(counter)
                await slots.acquire()
                if self.paused.is_set() or stop.is_set():
                    slots.release()
                    continue
                self.in_flight += 1  # counted before it runs: ``pause`` waits for it
                self.idle.clear()
                target = self.targets[n % len(self.targets)]
                task = asyncio.create_task(self._declare(http, target, tokens[target.name], n, slots))
                pending.add(task)
                task.add_done_callback(pending.discard)
            await asyncio.gather(*pending, return_exceptions=True)

    async def _declare(self, http: httpx.AsyncClient, target: Target, token: str, n: int,
                       slots: asyncio.Semaphore) -> None:
        today = dt.datetime.now(ZoneInfo(self.timezone)).date().isoformat()
        body = {"community_id": target.community, "subject_id": target.subjects[n * 7 % len(target.subjects)],
                "rule_code": RULE, "quantity": 1, "occurred_on": today, "channel": "oral",
                "description": "志愿服务 1 小时", "evidence": []}
        try:
            r = await http.post(f"{target.url}/declarations", json=body,
                                headers={"idempotency-key": f"faults-{self.run_id}-{n:08d}", "authorization": token})
            if r.status_code == 201:
                self.acks.append(Ack(r.json()["item_id"], time.monotonic(), target.name))
            else:
                self.failures += 1
        except httpx.HTTPError:
            self.failures += 1  # not acknowledged: the suite does not count it
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self.idle.set()
            slots.release()
