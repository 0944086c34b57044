"""Retention: pruning by count and age in small batches, and the file size staying bounded."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from picloud.config import Settings
from picloud.ops import retention
from picloud.store import Database
from picloud.store import retention as sql

HOUR_MS = 3_600_000
DAY0_MS = 1_800_000_000_000  # an arbitrary "midnight" in unix ms


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(tmp_path / "picloud.db")
    database.open()
    await database.write(_seed)
    yield database
    await database.close()


def _seed(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO apps (id, created_at) VALUES ('home', 0)")
    conn.execute(
        "INSERT INTO scripts (id, app_id, version, timeout_ms, memory_mb, created_at, updated_at)"
        " VALUES ('s', 'home', 1, 5000, 64, 0, 0)"
    )
    conn.execute(
        "INSERT INTO script_versions (script_id, version, source, sha256, created_at)"
        " VALUES ('s', 1, 'def handle(ctx): pass', 'x', 0)"
    )
    conn.execute(
        "INSERT INTO triggers (id, app_id, kind, script_id, collection, ops, created_at)"
        " VALUES ('t1', 'home', 'kv', 's', 'c', 'insert', 0)"
    )


def _invocations(conn: sqlite3.Connection, start_ms: int, count: int, span_ms: int) -> None:
    """`count` invocation rows started evenly over `span_ms`, each with a 400-byte log."""
    log = "x" * 400
    rows = [
        (f"inv{start_ms + i * span_ms // count:015d}{i:06d}", start_ms + i * span_ms // count, log)
        for i in range(count)
    ]
    conn.executemany(
        "INSERT INTO invocations (id, app_id, script_id, version, trigger, status, started_at,"
        " duration_ms, log) VALUES (?, 'home', 's', 1, 'http', 'ok', ?, 3.5, ?)",
        rows,
    )


def _events(conn: sqlite3.Connection, at_ms: int, count: int, state: str = "delivered") -> None:
    payload = '{"type":"kv","value":"' + "v" * 300 + '"}'
    conn.executemany(
        "INSERT INTO events (trigger_id, app_id, order_key, payload, state, next_at, created_at)"
        " VALUES ('t1', 'home', ?, ?, ?, ?, ?)",
        [(f"c\x00k{i}", payload, state, at_ms, at_ms) for i in range(count)],
    )


def _count(conn: sqlite3.Connection, query: str) -> int:
    return int(conn.execute(query).fetchone()[0])


def _file_size(db: Database) -> int:
    return db.path.stat().st_size


async def _checkpoint(db: Database) -> None:
    """What wal_autocheckpoint does on its own in the daemon, here at a known moment."""
    await db.write(lambda c: None)
    await db.read(lambda c: c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())


async def test_a_day_at_a_steady_rate_keeps_the_file_bounded(db: Database, tmp_path: Path) -> None:
    # 1,500 invocations and 300 delivered events an hour for 24 hours: about 17 MB of rows
    # that would all be kept without retention.
    settings = Settings(
        state_dir=tmp_path,
        invocations_keep=3000,
        invocations_keep_days=0.25,  # 6 hours
        delivered_events_keep_h=2.0,
    )
    sizes = []
    for hour in range(24):
        start = DAY0_MS + hour * HOUR_MS
        await db.write(lambda c, s=start: _invocations(c, s, 1500, HOUR_MS))
        await db.write(lambda c, s=start: _events(c, s, 300))
        await retention.run_once(db, settings, now_ms=start + HOUR_MS)
        await _checkpoint(db)
        sizes.append(_file_size(db))
        inv = await db.read(lambda c: _count(c, "SELECT count(*) FROM invocations"))
        assert inv <= settings.invocations_keep
    end = DAY0_MS + 24 * HOUR_MS
    oldest = await db.read(lambda c: _count(c, "SELECT min(started_at) FROM invocations"))
    assert oldest >= end - 6 * HOUR_MS
    old_events = await db.read(
        lambda c: _count(c, f"SELECT count(*) FROM events WHERE created_at < {end - 2 * HOUR_MS}")
    )
    assert old_events == 0
    # Bounded: the file stops growing once retention keeps pace (hours 4..24 stay flat),
    # far below the ~17 MB a day of rows takes.
    print("file size after each hour (bytes):", sizes)
    assert max(sizes) < 5 * 1024 * 1024, sizes
    assert max(sizes[6:]) <= max(sizes[:6]) * 1.2, sizes


async def test_without_retention_the_same_load_grows(db: Database) -> None:
    """The control for the test above: the bound is retention's doing, not the load's."""
    for hour in range(24):
        start = DAY0_MS + hour * HOUR_MS
        await db.write(lambda c, s=start: _invocations(c, s, 1500, HOUR_MS))
        await db.write(lambda c, s=start: _events(c, s, 300))
    await _checkpoint(db)
    print("without retention, after 24 h (bytes):", _file_size(db))
    assert _file_size(db) > 3 * 5 * 1024 * 1024


async def test_prunes_by_count_keeping_the_newest(db: Database, tmp_path: Path) -> None:
    await db.write(lambda c: _invocations(c, DAY0_MS, 1200, HOUR_MS))
    settings = Settings(state_dir=tmp_path, invocations_keep=100, invocations_keep_days=365)
    done = await retention.run_once(db, settings, now_ms=DAY0_MS + HOUR_MS)
    assert done["invocations"] == 1100
    left = await db.read(
        lambda c: c.execute("SELECT min(started_at), count(*) FROM invocations").fetchone()
    )
    assert left[1] == 100
    assert left[0] == DAY0_MS + 1100 * HOUR_MS // 1200


async def test_prunes_in_small_write_transactions(db: Database, tmp_path: Path) -> None:
    await db.write(lambda c: _invocations(c, DAY0_MS, 1200, HOUR_MS))
    settings = Settings(state_dir=tmp_path, invocations_keep_days=0.001)
    before = db.commits
    done = await retention.run_once(db, settings, now_ms=DAY0_MS + 10 * HOUR_MS)
    assert done["invocations"] == 1200
    # 1,200 rows at BATCH=500 a write: at least three separate commits, never one big one.
    assert db.commits - before >= 1200 // retention.BATCH + 1


async def test_only_delivered_events_are_pruned(db: Database, tmp_path: Path) -> None:
    await db.write(lambda c: _events(c, DAY0_MS, 10, "delivered"))
    await db.write(lambda c: _events(c, DAY0_MS, 4, "pending"))
    await db.write(lambda c: _events(c, DAY0_MS, 3, "retrying"))
    settings = Settings(state_dir=tmp_path, delivered_events_keep_h=1)
    done = await retention.run_once(db, settings, now_ms=DAY0_MS + 30 * 24 * HOUR_MS)
    assert done["events"] == 10
    states = await db.read(
        lambda c: dict(c.execute("SELECT state, count(*) FROM events GROUP BY state").fetchall())
    )
    assert states == {"pending": 4, "retrying": 3}


async def test_old_script_versions_pruned_never_the_current(db: Database, tmp_path: Path) -> None:
    def versions(conn: sqlite3.Connection) -> None:
        for v in range(2, 11):
            conn.execute(
                "INSERT INTO script_versions (script_id, version, source, sha256, created_at)"
                " VALUES ('s', ?, 'src', 'x', 0)",
                (v,),
            )
        # A second script whose current version is its oldest (an admin's choice).
        conn.execute(
            "INSERT INTO scripts (id, app_id, version, timeout_ms, memory_mb, created_at,"
            " updated_at) VALUES ('t', 'home', 1, 5000, 64, 0, 0)"
        )
        for v in range(1, 7):
            conn.execute(
                "INSERT INTO script_versions (script_id, version, source, sha256, created_at)"
                " VALUES ('t', ?, 'src', 'x', 0)",
                (v,),
            )
        conn.execute("UPDATE scripts SET version = 10 WHERE id = 's'")

    await db.write(versions)
    settings = Settings(state_dir=tmp_path, script_versions_keep=3)
    done = await retention.run_once(db, settings, now_ms=DAY0_MS)
    assert done["script_versions"] == 7 + 2  # s: 1..7; t: 2 and 3 (1 is current)

    def kept(conn: sqlite3.Connection) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for script, version in conn.execute(
            "SELECT script_id, version FROM script_versions ORDER BY 1, 2"
        ):
            out.setdefault(script, []).append(version)
        return out

    assert await db.read(kept) == {"s": [8, 9, 10], "t": [1, 4, 5, 6]}


async def test_incremental_vacuum_gives_space_back(db: Database, tmp_path: Path) -> None:
    await db.write(lambda c: _invocations(c, DAY0_MS, 8000, HOUR_MS))
    await _checkpoint(db)
    grown = _file_size(db)
    settings = Settings(state_dir=tmp_path, invocations_keep=10)
    free_before = (await db.read(sql.page_stats)).freelist_count
    await db.write(lambda c: sql.prune_invocations_before(c, DAY0_MS + HOUR_MS, 10**6))
    free = (await db.read(sql.page_stats)).freelist_count
    assert free > free_before + 512
    commits = db.commits
    freed = await retention.vacuum(db)
    assert freed == free - 256  # everything but the slack
    # In steps of 256 pages each (not one page per write transaction).
    assert db.commits - commits <= freed // 256 + 1
    done = await retention.run_once(db, settings, now_ms=DAY0_MS + HOUR_MS)
    assert done["vacuumed_pages"] == 0
    await _checkpoint(db)
    pages = await db.read(sql.page_stats)
    assert pages.auto_vacuum == 2
    assert pages.freelist_count <= 256  # the slack left for reuse
    assert _file_size(db) < grown / 2


async def test_stats_accumulate(db: Database, tmp_path: Path) -> None:
    await db.write(lambda c: _invocations(c, DAY0_MS, 50, HOUR_MS))
    stats = retention.RetentionStats()
    settings = dataclasses.replace(Settings(state_dir=tmp_path), invocations_keep=20)
    await retention.run_once(db, settings, stats, now_ms=DAY0_MS + HOUR_MS)
    await retention.run_once(db, settings, stats, now_ms=DAY0_MS + HOUR_MS)
    assert stats.runs == 2
    assert stats.pruned["invocations"] == 30
    assert stats.last_run_at is not None


async def test_a_large_backlog_is_pruned_without_stalling_writers(
    db: Database, tmp_path: Path
) -> None:
    """60,000 rows (34 MB) pruned and given back in one pass while a writer keeps writing."""
    import time

    for k in range(6):
        await db.write(lambda c, s=DAY0_MS + k * HOUR_MS: _invocations(c, s, 10_000, HOUR_MS))
    await _checkpoint(db)
    before = _file_size(db)
    waits: list[float] = []
    stop = asyncio.Event()

    async def writer() -> None:
        while not stop.is_set():
            t = time.perf_counter()
            await db.write(lambda c: c.execute("SELECT 1").fetchone())
            waits.append((time.perf_counter() - t) * 1000)
            await asyncio.sleep(0.005)

    task = asyncio.create_task(writer())
    started = time.perf_counter()
    settings = Settings(state_dir=tmp_path, invocations_keep=100, invocations_keep_days=365)
    done = await retention.run_once(db, settings, now_ms=DAY0_MS + 6 * HOUR_MS)
    took = time.perf_counter() - started
    stop.set()
    await task
    await _checkpoint(db)
    waits.sort()
    print(
        f"pruned {done['invocations']} rows, vacuumed {done['vacuumed_pages']} pages in "
        f"{took:.2f}s; file {before / 1e6:.1f} MB -> {_file_size(db) / 1e6:.1f} MB; "
        f"concurrent write wait p50 {waits[len(waits) // 2]:.1f} ms, max {waits[-1]:.1f} ms"
    )
    assert done["invocations"] == 59_900
    assert _file_size(db) < before / 10
    assert waits[-1] < 2000  # sanity only: the machine is shared; the figure is printed


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BACKUP_INTERVAL_H", "0"),
        ("BACKUP_KEEP", "0"),
        ("SCRIPT_VERSIONS_KEEP", "0"),
        ("INVOCATIONS_KEEP", "-1"),
        ("INVOCATIONS_KEEP_DAYS", "-0.5"),
        ("DELIVERED_EVENTS_KEEP_H", "-1"),
    ],
)
def test_ops_settings_are_checked_at_start(name: str, value: str, tmp_path: Path) -> None:
    from picloud.config import ConfigError, load_settings

    empty = tmp_path / "empty.toml"
    empty.write_text("")
    with pytest.raises(ConfigError, match=name.lower()):
        load_settings({f"PICLOUD_{name}": value}, config_file=empty)
    assert load_settings({}, config_file=empty).backup_keep == 7
