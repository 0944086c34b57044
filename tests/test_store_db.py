"""The store's one writer path: group commit, savepoints, readers, on real SQLite files."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from picloud.store import Database, StoreError, migrate
from picloud.store import apps as store_apps
from picloud.store.checkpoint import Checkpointer
from picloud.store.db import connect

WRITES = 300


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(tmp_path / "picloud.db")
    database.open()
    try:
        yield database
    finally:
        await database.close()


def _counter(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS counter (n INTEGER NOT NULL)")
    if conn.execute("SELECT count(*) FROM counter").fetchone()[0] == 0:
        conn.execute("INSERT INTO counter VALUES (0)")


def _increment(conn: sqlite3.Connection) -> int:
    """A read-modify-write: loses updates if two of them ever interleave."""
    (n,) = conn.execute("SELECT n FROM counter").fetchone()
    conn.execute("UPDATE counter SET n = ?", (n + 1,))
    return int(n) + 1


async def test_concurrent_writes_never_interleave(db: Database) -> None:
    await db.write(_counter)
    results = await asyncio.gather(*(db.write(_increment) for _ in range(WRITES)))
    assert sorted(results) == list(range(1, WRITES + 1))
    assert await db.read(lambda c: c.execute("SELECT n FROM counter").fetchone()[0]) == WRITES


async def test_writes_queued_together_share_commits(db: Database) -> None:
    await db.write(_counter)
    before = db.commits
    await asyncio.gather(*(db.write(_increment) for _ in range(WRITES)))
    commits = db.commits - before
    assert 1 <= commits < WRITES // 3, commits


async def test_a_failing_write_rolls_back_alone(db: Database) -> None:
    class Boom(Exception):
        pass

    def good(n: int) -> object:
        return lambda c: store_apps.create_app(c, f"app-{n}")

    def bad(conn: sqlite3.Connection) -> None:
        store_apps.create_app(conn, "doomed")
        raise Boom("no")

    outcomes = await asyncio.gather(
        db.write(good(1)), db.write(bad), db.write(good(2)), return_exceptions=True
    )
    assert isinstance(outcomes[1], Boom)
    assert not isinstance(outcomes[0], BaseException)
    assert not isinstance(outcomes[2], BaseException)
    ids = await db.read(lambda c: [a.id for a in store_apps.list_apps(c, None, 10)])
    assert ids == ["app-1", "app-2"]


async def test_an_acknowledged_write_is_visible_to_other_connections(
    db: Database, tmp_path: Path
) -> None:
    await db.write(lambda c: store_apps.create_app(c, "home"))
    assert db.read_now(lambda c: store_apps.app_exists(c, "home"))
    assert await db.read(lambda c: store_apps.app_exists(c, "home"))
    other = sqlite3.connect(tmp_path / "picloud.db")
    try:
        assert other.execute("SELECT id FROM apps").fetchall() == [("home",)]
    finally:
        other.close()


async def test_commit_listeners_run_on_the_loop(db: Database) -> None:
    loop = asyncio.get_running_loop()
    seen: list[bool] = []
    db.on_commit(lambda: seen.append(asyncio.get_running_loop() is loop))
    await db.write(lambda c: store_apps.create_app(c, "home"))
    assert seen
    assert all(seen)


async def test_config_listeners_skip_routine_writes(db: Database) -> None:
    """KV rows, events and records do not drop the request path's script/key cache."""
    config: list[int] = []
    every: list[int] = []
    db.on_config_commit(lambda: config.append(1))
    db.on_commit(lambda: every.append(1))
    await db.write(lambda c: store_apps.create_app(c, "home"))
    assert (len(config), len(every)) == (1, 1)
    await db.write(lambda c: c.execute("SELECT 1").fetchone(), routine=True)
    assert (len(config), len(every)) == (1, 2)
    # A batch holding one non-routine write among routine ones still tells them.
    await asyncio.gather(
        db.write(lambda c: c.execute("SELECT 1").fetchone(), routine=True),
        db.write(lambda c: store_apps.create_app(c, "other")),
    )
    assert len(config) == 2


async def test_foreign_keys_are_enforced(db: Database) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        await db.write(lambda c: store_apps.create_key(c, "k", "no-such-app", "h" * 64, "p"))


async def test_closed_store_refuses_work(tmp_path: Path) -> None:
    database = Database(tmp_path / "x.db")
    with pytest.raises(StoreError):
        await database.write(lambda c: None)
    database.open()
    await database.close()
    with pytest.raises(StoreError):
        await database.write(lambda c: None)
    with pytest.raises(StoreError):
        await database.read(lambda c: None)


async def test_a_newer_schema_is_refused_at_open(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={migrate.latest_version() + 1}")
    conn.close()
    database = Database(path)
    with pytest.raises(StoreError, match="newer"):
        database.open()
    await database.close()


async def test_connections_use_the_documented_pragmas(db: Database) -> None:
    def pragmas(conn: sqlite3.Connection) -> dict[str, object]:
        names = ["journal_mode", "synchronous", "foreign_keys", "busy_timeout", "temp_store"]
        return {n: conn.execute(f"PRAGMA {n}").fetchone()[0] for n in names}

    expected = {
        "journal_mode": "wal",
        "synchronous": 1,
        "foreign_keys": 1,
        "busy_timeout": 5000,
        "temp_store": 2,
    }
    assert db.read_now(pragmas) == expected
    assert await db.read(pragmas) == expected
    # The loop's own write connection never busy-waits: it retries instead (see below);
    # a bulk write, on its thread, waits as the others do.
    assert await db.write(pragmas) == {**expected, "busy_timeout": 0}
    assert await db.write(pragmas, bulk=True) == expected


async def test_normal_durability_commits_on_the_loop_and_checkpoints_off_it(
    tmp_path: Path,
) -> None:
    """Writes commit on the loop; the WAL still gets checkpointed, by a thread of its own."""
    db = Database(tmp_path / "picloud.db", "normal")
    db.open()
    try:
        assert db.on_loop
        assert not any(t.name == "store-write" for t in threading.enumerate())
        loop_thread = threading.get_ident()
        await db.write(_counter)
        ran_on = await db.write(lambda c: threading.get_ident())
        assert ran_on == loop_thread
        for _ in range(40):  # separate commits: frames pile up in the WAL
            await db.write(_increment)
        ckpt = Checkpointer(connect(db.path), db.path, pages=10, every_s=0.02)
        frames = ckpt.wal_frames()
        assert frames >= 10
        ckpt.start()
        try:
            for _ in range(250):
                if ckpt.checkpoints:
                    break
                await asyncio.sleep(0.02)
            assert ckpt.checkpoints == 1
        finally:
            await asyncio.to_thread(ckpt.stop)
        # The WAL restarts from its start on the next write once all of it is checkpointed.
        await db.write(_increment)
        assert ckpt.wal_frames() < frames  # reads the -shm file; needs no connection
        assert db.read_now(lambda c: c.execute("SELECT n FROM counter").fetchone()[0]) == 41
    finally:
        await db.close()


async def test_full_durability_commits_on_a_writer_thread(tmp_path: Path) -> None:
    db = Database(tmp_path / "picloud.db", "full")
    db.open()
    try:
        assert not db.on_loop
        ran_on = await db.write(lambda c: threading.get_ident())
        assert ran_on != threading.get_ident()
    finally:
        await db.close()


async def test_a_bulk_write_runs_off_the_loop_and_holds_the_loops_writes(tmp_path: Path) -> None:
    """One writer at a time still: a loop write queued meanwhile commits after the bulk one."""
    db = Database(tmp_path / "picloud.db", "normal")
    db.open()
    order: list[str] = []

    def slow(conn: sqlite3.Connection) -> int:
        order.append("bulk start")
        conn.execute("CREATE TABLE t (n INTEGER)")
        time.sleep(0.2)  # the loop keeps serving meanwhile
        order.append("bulk end")
        return threading.get_ident()

    def quick(conn: sqlite3.Connection) -> int:
        order.append("loop write")
        conn.execute("INSERT INTO t VALUES (1)")  # needs the bulk write's table
        return threading.get_ident()

    try:
        bulk = asyncio.ensure_future(db.write(slow, bulk=True))
        await asyncio.sleep(0.05)
        assert order == ["bulk start"]  # and the loop is free: we got here
        loop_write = asyncio.ensure_future(db.write(quick))
        bulk_thread, loop_thread = await asyncio.gather(bulk, loop_write)
        assert order == ["bulk start", "bulk end", "loop write"]
        assert bulk_thread != threading.get_ident()
        assert loop_thread == threading.get_ident()
        # A failing bulk write fails alone and the next writes go on.
        with pytest.raises(ZeroDivisionError):
            await db.write(lambda c: 1 // 0, bulk=True)
        assert await db.write(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0]) == 1
        pending = asyncio.ensure_future(db.write(slow, bulk=True))
        await asyncio.sleep(0.05)
    finally:
        await db.close()  # waits for the bulk write in flight
    with pytest.raises(sqlite3.OperationalError, match="already exists"):
        await pending  # it ran (CREATE TABLE again) and its error reached its caller


async def test_a_lock_held_by_another_process_does_not_stall_the_loop(tmp_path: Path) -> None:
    """The loop never busy-waits for SQLite's write lock: it retries, and serves meanwhile."""
    db = Database(tmp_path / "picloud.db", "normal")
    db.open()
    other = sqlite3.connect(db.path, isolation_level=None)
    try:
        await db.write(_counter)
        other.execute("BEGIN IMMEDIATE")  # e.g. the sqlite3 shell, mid-transaction
        started = time.monotonic()
        write = asyncio.ensure_future(db.write(_increment))
        ticks = 0
        while time.monotonic() - started < 0.3:
            await asyncio.sleep(0.01)  # the loop keeps turning while the write waits
            ticks += 1
        assert not write.done()
        assert ticks >= 10
        other.execute("COMMIT")
        assert await asyncio.wait_for(write, 2.0) == 1
    finally:
        other.close()
        await db.close()


@pytest.mark.parametrize("durability", ["normal", "full"])
async def test_settled_is_called_once_whatever_becomes_of_the_write(
    tmp_path: Path, durability: str
) -> None:
    db = Database(tmp_path / "s.db", durability)  # type: ignore[arg-type]
    db.open()
    calls: list[str] = []

    def boom(conn: sqlite3.Connection) -> None:
        raise ValueError("no")

    try:
        await db.write(_counter, settled=lambda: calls.append("ok"))
        with pytest.raises(ValueError, match="no"):
            await db.write(boom, settled=lambda: calls.append("failed"))
        # A cancelled caller: the queued write still commits, and says so.
        write = asyncio.create_task(db.write(_increment, settled=lambda: calls.append("gone")))
        await asyncio.sleep(0)
        write.cancel()
        for _ in range(100):
            if "gone" in calls:
                break
            await asyncio.sleep(0.01)
        assert db.read_now(lambda c: c.execute("SELECT n FROM counter").fetchone()[0]) == 1
    finally:
        await db.close()
    with pytest.raises(StoreError):
        await db.write(_counter, settled=lambda: calls.append("closed"))
    assert calls == ["ok", "failed", "gone", "closed"]
