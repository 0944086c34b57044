"""Bytes the KV store writes per 1,000 sets, one at a time and 32 in flight (docs/storage.md).

Measured from /proc/self/io of this process (the store's writer thread is in it):
`wchar` counts every byte handed to write()/pwrite() (WAL frames, then the
checkpoint into the database file); `write_bytes` what reached the block layer.
Run with `-s` to print the figures that docs/storage.md quotes.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from pathlib import Path

import pytest

from picloud.kv.service import SqliteKv
from picloud.store import Database
from picloud.store import apps as app_store

PAGE = 4096
SETS = 1000


def _io() -> dict[str, int]:
    with open("/proc/self/io") as f:
        return {k: int(v) for k, v in (line.split(":") for line in f)}


def _checkpoint(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    conn.close()


async def _measure(path: Path, durability: str, concurrency: int) -> dict[str, float]:
    db = Database(path, durability)  # type: ignore[arg-type]
    db.open()
    try:
        await db.write(lambda c: app_store.create_app(c, "home"))
        kv = SqliteKv(db, 1 << 20, 1 << 30)
        # 1,000 sensors already stored: every measured set updates one of them.
        value = '{"t":21.5,"h":40}'
        await asyncio.gather(*(kv.set("home", "s", f"sensor:{i:04}", value) for i in range(SETS)))
        _checkpoint(path)
        os.sync()
        before, commits, t0 = _io(), db.commits, time.perf_counter()
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                await kv.set("home", "s", f"sensor:{i:04}", f'{{"t":{i % 30}.5,"h":41}}')

        await asyncio.gather(*(one(i) for i in range(SETS)))
        elapsed = time.perf_counter() - t0
        wal = _io()
        _checkpoint(path)
        os.sync()
        after = _io()
        return {
            "commits": db.commits - commits,
            "wal_kib": (wal["wchar"] - before["wchar"]) / 1024,
            "total_kib": (after["wchar"] - before["wchar"]) / 1024,
            "block_kib": (after["write_bytes"] - before["write_bytes"]) / 1024,
            "sets_per_s": SETS / elapsed,
        }
    finally:
        await db.close()


@pytest.mark.parametrize("durability", ["normal", "full"])
async def test_group_commit_cuts_bytes_written(tmp_path: Path, durability: str) -> None:
    one = await _measure(tmp_path / "one.db", durability, 1)
    many = await _measure(tmp_path / "many.db", durability, 32)
    for label, m in (("c=1", one), ("c=32", many)):
        print(  # noqa: T201 - the figures docs/storage.md quotes
            f"\n{durability} {label}: {m['commits']:.0f} commits, "
            f"{m['wal_kib']:.0f} KiB to the WAL, {m['total_kib']:.0f} KiB with the checkpoint, "
            f"{m['block_kib']:.0f} KiB at the block layer, {m['sets_per_s']:.0f} sets/s"
        )
    # One at a time: a commit each, so at least one 4 KiB WAL frame per set.
    assert one["commits"] == SETS
    assert one["wal_kib"] * 1024 >= SETS * PAGE
    # 32 in flight share commits, and so pages: several times fewer bytes.
    assert many["commits"] <= SETS / 8
    assert many["total_kib"] * 4 < one["total_kib"]
