"""What one counter transaction holds: the shoppers and shelves it has locked, kept up to date as
its redemptions are decided (the rows stay locked until commit, so nobody else changes them), and
the redemptions it has yet to write. A batch of redemptions therefore costs two statements of
its own, whatever its size: the counter's opening one (claims; shoppers, then shelves, locked and
read) and the write.

Any other command (a return, a listing, a donation) first writes what is pending and forgets what
it may change, then works on the tables directly.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from services.exchange import state, tables
from services.exchange.domain.evolve import Supermarket, evolve
from services.exchange.domain.model import Shelf, Shopper
from shared.events.exchange import Redeemed


class Held:
    def __init__(self, shoppers: dict[str, Shopper] | None = None, shelves: dict[str, Shelf] | None = None) -> None:
        """``shoppers`` (by member code) and ``shelves``: what the transaction has already locked."""
        self.shoppers: dict[str, Shopper] = shoppers or {}
        self.shelves: dict[str, Shelf] = shelves or {}
        self.unwritten: list[Redeemed] = []

    async def shopper(self, conn: asyncpg.Connection, code: str, item_ids: Sequence[str]) -> Shopper | None:
        found = self.shoppers.get(code)
        if found is None or any(i not in self.shelves for i in item_ids):  # not preloaded for these items
            await self.write(conn)  # the tables must hold this batch's redemptions before reading them again
            found = (await state.shoppers_for_update(conn, [code], item_ids)).get(code)
            if found is not None:
                self.shoppers[code] = found
        return found

    async def shelves_for(self, conn: asyncpg.Connection, item_ids: Sequence[str]) -> dict[str, Shelf]:
        missing = [i for i in item_ids if i not in self.shelves]
        if missing:
            self.shelves |= await state.shelves_for_update(conn, missing)
        return {i: self.shelves[i] for i in item_ids if i in self.shelves}

    def redeemed(self, shopper: Shopper, ev: Redeemed) -> None:
        """Fold the redemption into what is held (``evolve``, the domain's one fold) and queue its write."""
        after = evolve(Supermarket(shelves=self.shelves, shoppers={shopper.subject_id: shopper}), ev)
        self.shelves = after.shelves
        self.shoppers[shopper.member_code] = after.shoppers[shopper.subject_id]
        self.unwritten.append(ev)

    async def write(self, conn: asyncpg.Connection) -> None:
        if self.unwritten:
            await tables.apply_redeemed(conn, self.unwritten)
            self.unwritten = []

    async def release(self, conn: asyncpg.Connection) -> None:
        """Before a command that works on the tables: write what is pending, forget what it may change."""
        await self.write(conn)
        self.shoppers, self.shelves = {}, {}
