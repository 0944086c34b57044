"""Batched invocation records: one `db.write` per flush of many rows, never an fsync per run."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from picloud.store import Database
from picloud.store import invocations as store

__all__ = ["Recorder"]

log = logging.getLogger("picloud.executor")
FLUSH_INTERVAL_S = 0.2
FLUSH_ROWS = 1000  # the 0.2 s interval usually comes first; fewer, larger writes
_MAX_BUFFER = 20000  # past this (the store is stuck), the oldest records are dropped


class Recorder:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._rows: list[store.Row] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # One flush at a time: a listing's flush must wait for rows a periodic flush holds.
        self._lock = asyncio.Lock()
        self.dropped = 0
        self.writes = 0  # db.write calls made, and the most rows any one of them carried
        self.largest_batch = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="invocation-recorder")

    def add(self, row: store.Row) -> None:
        self._rows.append(row)
        if len(self._rows) > _MAX_BUFFER:
            del self._rows[0]
            self.dropped += 1
        if len(self._rows) >= FLUSH_ROWS:
            self._wake.set()

    async def flush(self) -> None:
        async with self._lock:
            rows, self._rows = self._rows, []
            if not rows:
                return
            self.writes += 1
            self.largest_batch = max(self.largest_batch, len(rows))
            try:
                await self.db.write(
                    lambda conn: store.insert_many(conn, rows), routine=True, bulk=True
                )
            except Exception:
                log.exception("executor: could not record %d invocations", len(rows))
                self._rows[:0] = rows[-_MAX_BUFFER:]

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FLUSH_INTERVAL_S):
                    await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
