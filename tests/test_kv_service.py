"""The KV service on a real SQLite file: rules, order, pages, TTL, quota, outbox, durability."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from picloud.kv import KV, dispatch, rules
from picloud.kv.api import AppNotFound
from picloud.kv.broker import point_reads
from picloud.kv.cache import ReadCache
from picloud.kv.service import SqliteKv
from picloud.store import Database
from picloud.store import apps as app_store
from picloud.store import kv as kv_store

QUOTA = 20_000
MAX_VALUE = 2_000


@pytest.fixture
async def kv(tmp_path: Path) -> AsyncIterator[SqliteKv]:
    db = Database(tmp_path / "kv.db")
    db.open()
    for app_id in ("home", "work"):
        await db.write(lambda c, a=app_id: app_store.create_app(c, a))
    try:
        # The daemon's default: every test here also runs through the read cache.
        yield SqliteKv(db, max_value_bytes=MAX_VALUE, quota_bytes=QUOTA, cache_bytes=1 << 20)
    finally:
        await db.close()


def _watch(kv: SqliteKv, app_id: str, collection: str) -> None:
    """A kv trigger on `collection` (rows written directly: the triggers API is not under test)."""
    conn = sqlite3.connect(kv.db.path)
    with conn:
        conn.execute(
            "INSERT OR IGNORE INTO scripts (id, app_id, version, timeout_ms, memory_mb,"
            " created_at, updated_at) VALUES (?, ?, 1, 1000, 64, 0, 0)",
            (f"on-{app_id}", app_id),
        )
        conn.execute(
            "INSERT INTO triggers (id, app_id, kind, script_id, collection, ops, created_at)"
            " VALUES (?, ?, 'kv', ?, ?, 'insert,update,delete', 0)",
            (f"t-{app_id}-{collection}", app_id, f"on-{app_id}", collection),
        )
    conn.close()


def _events(kv: SqliteKv) -> list[tuple[dict[str, Any], int]]:
    conn = sqlite3.connect(kv.db.path)
    rows = conn.execute("SELECT payload, depth FROM events ORDER BY id").fetchall()
    conn.close()
    return [(json.loads(p), d) for p, d in rows]


# ---- basics


async def test_set_get_has_delete(kv: SqliteKv) -> None:
    assert await kv.get("home", "w", "k") is None
    assert not await kv.has("home", "w", "k")
    assert await kv.set("home", "w", "k", '{"n":1}') == "insert"
    assert await kv.get("home", "w", "k") == '{"n":1}'
    assert await kv.set("home", "w", "k", "[1,2]") == "update"
    assert await kv.get("home", "w", "k") == "[1,2]"
    assert await kv.delete("home", "w", "k") is True
    assert await kv.delete("home", "w", "k") is False
    assert await kv.get("home", "w", "k") is None


async def test_null_is_a_value(kv: SqliteKv) -> None:
    await kv.set("home", "w", "k", "null")
    assert await kv.has("home", "w", "k")
    assert await kv.get("home", "w", "k") == "null"


async def test_apps_are_isolated(kv: SqliteKv) -> None:
    await kv.set("home", "widgets", "k", '"home"')
    await kv.set("work", "widgets", "k", '"work"')
    assert await kv.get("home", "widgets", "k") == '"home"'
    assert await kv.get("work", "widgets", "k") == '"work"'
    await kv.delete("work", "widgets", "k")
    assert await kv.get("home", "widgets", "k") == '"home"'
    assert [i.key for i in (await kv.list("work", "widgets")).items] == []


async def test_unknown_app_write_is_refused(kv: SqliteKv) -> None:
    with pytest.raises(AppNotFound):
        await kv.set("ghost", "w", "k", "1")
    with pytest.raises(AppNotFound):
        await kv.incr("ghost", "w", "k")


# ---- validation (the daemon's last word)


@pytest.mark.parametrize(
    ("collection", "key", "error"),
    [
        ("", "k", ValueError),
        ("a/b", "k", ValueError),
        ("x" * 65, "k", ValueError),
        (7, "k", TypeError),
        ("w", "", ValueError),
        ("w", "é" * 257, ValueError),  # 514 bytes
        ("w", "\ud800", ValueError),
        ("w", 5, TypeError),
        ("w", None, TypeError),
    ],
)
async def test_bad_names_are_refused(
    kv: SqliteKv, collection: Any, key: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await kv.set("home", collection, key, "1")
    with pytest.raises(error):
        await kv.get("home", collection, key)


async def test_key_limit_is_in_utf8_bytes(kv: SqliteKv) -> None:
    key = "é" * 256  # 512 bytes, 256 characters
    await kv.set("home", "w", key, "1")
    assert await kv.get("home", "w", key) == "1"


@pytest.mark.parametrize("text", ["", "{", "NaN", "[Infinity]", "1 2", "undefined"])
async def test_value_must_be_json(kv: SqliteKv, text: str) -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        await kv.set("home", "w", "k", text)
    with pytest.raises(TypeError):
        await kv.set("home", "w", "k", 1)  # type: ignore[arg-type]


async def test_value_size_limit(kv: SqliteKv) -> None:
    await kv.set("home", "w", "k", json.dumps("x" * (MAX_VALUE - 2)))
    with pytest.raises(rules.ValueTooLarge, match="limit is 2000"):
        await kv.set("home", "w", "k", json.dumps("x" * (MAX_VALUE - 1)))


@pytest.mark.parametrize(
    ("ttl", "error"),
    [
        (0, ValueError),
        (-1, ValueError),
        (float("nan"), ValueError),
        ("1", TypeError),
        (True, TypeError),
        (1e12, ValueError),
    ],
)
async def test_bad_ttl(kv: SqliteKv, ttl: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        await kv.set("home", "w", "k", "1", ttl=ttl)


# ---- listing


async def test_list_is_in_utf8_byte_order(kv: SqliteKv) -> None:
    keys = ["b", "B", "a", "a\x00", "ab", "é", "z", "\U0001f600", "\uffff", "0", " "]
    for key in keys:
        await kv.set("home", "w", key, json.dumps(key))
    page = await kv.list("home", "w")
    assert [i.key for i in page.items] == sorted(keys, key=lambda k: k.encode())
    assert page.cursor is None
    assert all(json.loads(i.value) == i.key for i in page.items)


async def test_list_prefix_and_pages(kv: SqliteKv) -> None:
    for n in range(25):
        await kv.set("home", "w", f"user:{n:02}", str(n))
        await kv.set("home", "w", f"usez{n:02}", str(n))
    await kv.set("home", "w", "user", "0")
    seen: list[str] = []
    cursor = None
    while True:
        page = await kv.list("home", "w", prefix="user:", limit=10, cursor=cursor)
        seen += [i.key for i in page.items]
        cursor = page.cursor
        if cursor is None:
            break
    assert seen == [f"user:{n:02}" for n in range(25)]
    exact = await kv.list("home", "w", prefix="user:24", limit=1)
    assert [i.key for i in exact.items] == ["user:24"]
    assert exact.cursor is None  # a full last page says so (one extra row was fetched)


async def test_prefix_at_the_top_of_unicode(kv: SqliteKv) -> None:
    top = "\U0010ffff"
    keys = ["a" + top, "a" + top + "x", "a" + top + top, "b", "a\U0010fffe"]
    for key in keys:
        await kv.set("home", "w", key, "1")
    page = await kv.list("home", "w", prefix="a" + top)
    assert [i.key for i in page.items] == sorted(keys[:3], key=str.encode)
    assert rules.prefix_end("a\ud7ff") == "a\ue000"
    assert rules.prefix_end(top) is None


async def test_cursor_is_tied_to_its_listing(kv: SqliteKv) -> None:
    for n in range(5):
        await kv.set("home", "w", f"p{n}", "1")
    page = await kv.list("home", "w", prefix="p", limit=2)
    assert page.cursor is not None
    with pytest.raises(ValueError, match="another listing"):
        await kv.list("home", "w", prefix="q", cursor=page.cursor)
    with pytest.raises(ValueError, match="another listing"):
        await kv.list("home", "other", prefix="p", cursor=page.cursor)
    with pytest.raises(ValueError, match="not valid"):
        await kv.list("home", "w", prefix="p", cursor="!!!")
    with pytest.raises(ValueError, match="between 1 and 1000"):
        await kv.list("home", "w", limit=1001)
    with pytest.raises(TypeError):
        await kv.list("home", "w", limit="5")  # type: ignore[arg-type]


async def test_pages_are_stable_under_concurrent_writes(kv: SqliteKv) -> None:
    for n in range(0, 20, 2):
        await kv.set("home", "w", f"k{n:02}", "1")
    first = await kv.list("home", "w", limit=4)
    # Keys added before the cursor are not seen again; keys after it are seen once.
    await kv.set("home", "w", "k01", "1")
    await kv.set("home", "w", "k19", "1")
    await kv.delete("home", "w", "k08")
    rest = await kv.list("home", "w", limit=100, cursor=first.cursor)
    assert [i.key for i in first.items] == ["k00", "k02", "k04", "k06"]
    assert [i.key for i in rest.items] == ["k10", "k12", "k14", "k16", "k18", "k19"]


async def test_one_item_pages_walk_every_key_exactly_once(kv: SqliteKv) -> None:
    top = "\U0010ffff"
    keys = ["a", "a\x00", "a\x00\x00", "a\x01", "a" + top, "a" + top + "\x00", "b", top, top * 2]
    for key in keys:
        await kv.set("home", "w", key, "1")
    for prefix in ("", "a", "a\x00", top):
        seen, cursor = [], None
        while True:
            page = await kv.list("home", "w", prefix=prefix, limit=1, cursor=cursor)
            seen += [i.key for i in page.items]
            cursor = page.cursor
            if cursor is None:
                break
        expected = sorted((k for k in keys if k.startswith(prefix)), key=str.encode)
        assert seen == expected, prefix


async def test_pages_past_the_loop_budget_are_read_on_a_thread(
    kv: SqliteKv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("picloud.kv.service.LOOP_BUDGET", 100)
    for n in range(30):
        await kv.set("home", "w", f"k{n:02}", json.dumps("x" * (n * 10)))
    small = await kv.list("home", "w", limit=3)  # 0 + 12 + 22 characters: on the loop
    large = await kv.list("home", "w", limit=20, cursor=small.cursor)  # past it: a thread
    assert [i.key for i in small.items + large.items] == [f"k{n:02}" for n in range(23)]
    assert json.loads(large.items[-1].value) == "x" * 220
    span = kv_store.Span("home", "w", "", None, 30)
    assert kv_store.page_within(kv.db._now_conn, span, 0, 100) is None  # type: ignore[arg-type]


async def test_a_page_is_a_primary_key_range_scan(kv: SqliteKv) -> None:
    for sql in (kv_store._PAGE, kv_store._PAGE_BOUNDED):
        args = (1,) * sql.count("?")
        plan = kv.db.read_now(
            lambda c, s=sql, a=args: c.execute(f"EXPLAIN QUERY PLAN {s}", a).fetchall()
        )
        detail = " ".join(row[-1] for row in plan)
        assert "SEARCH kv USING PRIMARY KEY" in detail, detail
        assert "key>?" in detail, detail
        assert "TEMP B-TREE" not in detail, detail


# ---- TTL


async def test_expired_keys_are_invisible_at_once(kv: SqliteKv) -> None:
    await kv.set("home", "w", "gone", "1", ttl=0.5)
    await kv.set("home", "w", "kept", "2", ttl=60)
    assert await kv.has("home", "w", "gone")
    await asyncio.sleep(0.6)
    assert await kv.get("home", "w", "gone") is None
    assert not await kv.has("home", "w", "gone")
    assert [i.key for i in (await kv.list("home", "w")).items] == ["kept"]
    assert (await kv.collections("home"))[0].count == 1
    # Still stored (and counted) until the purge; an expired key is not "present".
    before = await kv.usage("home")
    assert before == len("gone") + 1 + len("kept") + 1
    assert await kv.purge_expired() == 1
    assert await kv.usage("home") == len("kept") + 1
    assert await kv.purge_expired() == 0


async def test_set_over_an_expired_key_is_an_insert(kv: SqliteKv) -> None:
    await kv.set("home", "w", "k", "1", ttl=0.03)
    await asyncio.sleep(0.05)
    assert await kv.set("home", "w", "k", "2") == "insert"
    assert await kv.get("home", "w", "k") == "2"
    await asyncio.sleep(0.05)
    assert await kv.get("home", "w", "k") == "2"  # a set without ttl clears the old expiry
    await kv.set("home", "w", "d", "1", ttl=0.03)
    await asyncio.sleep(0.05)
    assert await kv.delete("home", "w", "d") is False
    assert await kv.usage("home") == 2


async def test_purge_is_batched(kv: SqliteKv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("picloud.kv.service.PURGE_BATCH", 7)
    for n in range(30):
        await kv.set("home", "w", f"k{n}", "1", ttl=0.01)
    await asyncio.sleep(0.03)
    assert await kv.purge_expired() == 30
    assert await kv.usage("home") == 0


# ---- incr


async def test_incr(kv: SqliteKv) -> None:
    assert await kv.incr("home", "c", "n") == 1
    assert await kv.incr("home", "c", "n", 41) == 42
    assert await kv.incr("home", "c", "n", -50) == -8
    assert await kv.get("home", "c", "n") == "-8"


async def test_incr_is_atomic(kv: SqliteKv) -> None:
    results = await asyncio.gather(*(kv.incr("home", "c", "n") for _ in range(300)))
    assert sorted(results) == list(range(1, 301))
    assert await kv.get("home", "c", "n") == "300"


@pytest.mark.parametrize("stored", ['"1"', "1.5", "true", "null", "[1]", '{"n":1}'])
async def test_incr_needs_an_integer(kv: SqliteKv, stored: str) -> None:
    await kv.set("home", "c", "n", stored)
    with pytest.raises(TypeError, match="not an int"):
        await kv.incr("home", "c", "n")
    assert await kv.get("home", "c", "n") == stored


async def test_incr_bounds_and_ttl(kv: SqliteKv) -> None:
    await kv.set("home", "c", "n", str(rules.INT64_MAX))
    with pytest.raises(ValueError, match="overflow"):
        await kv.incr("home", "c", "n")
    with pytest.raises(TypeError):
        await kv.incr("home", "c", "n", True)
    with pytest.raises(ValueError, match="64-bit"):
        await kv.incr("home", "c", "n", 2**64)
    await kv.set("home", "c", "t", "1", ttl=0.5)
    assert await kv.incr("home", "c", "t") == 2
    await asyncio.sleep(0.6)
    assert await kv.get("home", "c", "t") is None  # incr kept the expiry
    assert await kv.incr("home", "c", "t") == 1  # an expired counter starts again at 0


# ---- quota


async def test_quota(kv: SqliteKv) -> None:
    value = json.dumps("x" * 1000)  # 1002 bytes
    n = 0
    while await _fits(kv, "home", f"k{n:03}", value):
        n += 1
    assert n == QUOTA // (1002 + 4)
    with pytest.raises(rules.QuotaExceeded, match=r"quota exceeded: app 'home' holds \d+ of 20000"):
        await kv.set("home", "q", "k999", value)
    used = await kv.usage("home")
    assert used == n * 1006
    # Shrinking or replacing with the same size is allowed at the limit; deleting frees.
    await kv.set("home", "q", "k000", "1")
    assert await kv.usage("home") == used - 1001
    await kv.delete("home", "q", "k001")
    await kv.set("home", "q", "k999", value)
    # Quota is per app.
    await kv.set("work", "q", "k", value)


async def _fits(kv: SqliteKv, app_id: str, key: str, value: str, collection: str = "q") -> bool:
    try:
        await kv.set(app_id, collection, key, value)
    except rules.QuotaExceeded:
        return False
    return True


# ---- outbox


async def test_changes_record_their_events_in_the_same_transaction(kv: SqliteKv) -> None:
    _watch(kv, "home", "w")
    await kv.set("home", "w", "k", '{"n":1}', depth=3)
    await kv.set("home", "w", "k", '{"n":2}')
    await kv.incr("home", "w", "c")
    await kv.delete("home", "w", "k")
    await kv.delete("home", "w", "k")  # absent: no event
    await kv.set("home", "other", "k", "1")  # not watched
    await kv.set("work", "w", "k", "1")  # another app
    events = _events(kv)
    assert [(e["op"], e["key"], e["value"], d) for e, d in events] == [
        ("insert", "k", {"n": 1}, 3),
        ("update", "k", {"n": 2}, 0),
        ("insert", "c", 1, 0),
        ("delete", "k", None, 0),
    ]
    assert all(e["type"] == "kv" and e["collection"] == "w" for e, _ in events)


async def test_refused_writes_and_expiry_record_no_event(kv: SqliteKv) -> None:
    _watch(kv, "home", "w")
    await kv.set("home", "w", "t", "1", ttl=0.02)
    await kv.set("home", "w", "n", '"x"')
    with pytest.raises(TypeError):
        await kv.incr("home", "w", "n")
    n = 0
    while await _fits(kv, "home", f"big{n}", json.dumps("x" * 1990), "w"):
        n += 1
    count = len(_events(kv))
    await asyncio.sleep(0.03)
    assert await kv.purge_expired() == 1
    assert len(_events(kv)) == count


# ---- group commit and durability


async def test_concurrent_sets_share_commits(kv: SqliteKv) -> None:
    commits, writes = kv.db.commits, kv.db.writes
    await asyncio.gather(*(kv.set("home", "g", f"k{n}", "1") for n in range(400)))
    assert kv.db.writes - writes == 400
    assert kv.db.commits - commits <= 400 // 4, kv.db.commits - commits


async def test_a_returned_set_is_committed(kv: SqliteKv) -> None:
    await kv.set("home", "w", "k", '"durable"')
    other = sqlite3.connect(kv.db.path)
    row = other.execute("SELECT value FROM kv WHERE key = 'k'").fetchone()
    other.close()
    assert row == ('"durable"',)


_CRASH = """
import asyncio, os, sys
from pathlib import Path
from picloud.kv.service import SqliteKv
from picloud.store import Database
from picloud.store import apps

async def main():
    db = Database(Path(sys.argv[1]), sys.argv[2])
    db.open()
    await db.write(lambda c: apps.create_app(c, "home"))
    kv = SqliteKv(db, 1024, 10**6)
    await asyncio.gather(*(kv.set("home", "w", f"k{n}", str(n)) for n in range(50)))
    print("acked", flush=True)
    os._exit(9)  # no close, no checkpoint: like a crash right after the reply

asyncio.run(main())
"""


@pytest.mark.parametrize("durability", ["normal", "full"])
def test_acknowledged_sets_survive_a_crash(tmp_path: Path, durability: str) -> None:
    path = tmp_path / "crash.db"
    out = subprocess.run(
        [sys.executable, "-c", _CRASH, str(path), durability],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).parent.parent,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    assert out.stdout.strip() == "acked", out.stderr
    assert out.returncode == 9
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM kv").fetchone() == (50,)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


# ---- the broker's entry point


@pytest.fixture
def web_app(kv: SqliteKv) -> web.Application:
    app = web.Application()
    app[KV] = kv
    return app


async def test_dispatch_round_trip(web_app: web.Application) -> None:
    assert (
        await dispatch(
            web_app, "home", 1, "kv.set", {"collection": "w", "key": "k", "value": "[1]"}
        )
        is None
    )
    assert await dispatch(web_app, "home", 1, "kv.get", {"collection": "w", "key": "k"}) == "[1]"
    assert await dispatch(web_app, "home", 1, "kv.has", {"collection": "w", "key": "k"}) is True
    assert (
        await dispatch(web_app, "home", 1, "kv.incr", {"collection": "w", "key": "n", "by": 5}) == 5
    )
    page = await dispatch(web_app, "home", 1, "kv.list", {"collection": "w", "limit": 1})
    assert [list(i) for i in page["items"]] == [["k", "[1]"]]
    assert isinstance(page["cursor"], str)
    assert await dispatch(web_app, "home", 1, "kv.delete", {"collection": "w", "key": "k"}) is True


async def test_dispatch_cannot_reach_another_app(web_app: web.Application) -> None:
    await dispatch(web_app, "work", 0, "kv.set", {"collection": "w", "key": "k", "value": '"work"'})
    for forged in ({"app": "work"}, {"app_id": "work"}, {"app": "home"}):
        with pytest.raises((ValueError, TypeError)):
            await dispatch(web_app, "home", 0, "kv.get", {"collection": "w", "key": "k", **forged})
        with pytest.raises((ValueError, TypeError)):
            await dispatch(
                web_app,
                "home",
                0,
                "kv.set",
                {"collection": "w", "key": "k", "value": "1", **forged},
            )
    with pytest.raises(ValueError, match="fixed by the daemon"):
        await dispatch(
            web_app, "home", 0, "kv.delete", {"collection": "w", "key": "k", "app": "work"}
        )
    assert await dispatch(web_app, "home", 0, "kv.get", {"collection": "w", "key": "k"}) is None
    assert await dispatch(web_app, "work", 0, "kv.get", {"collection": "w", "key": "k"}) == '"work"'


async def test_dispatch_errors_are_plain_builtins(web_app: web.Application, kv: SqliteKv) -> None:
    cases: list[tuple[str, Any, type[Exception]]] = [
        ("kv.nope", {}, ValueError),
        ("kv.get", ["w", "k"], TypeError),
        ("kv.get", {"collection": "w"}, TypeError),
        ("kv.get", {"collection": "w", "key": "k", "extra": 1}, TypeError),
        ("kv.set", {"collection": "w", "key": "k", "value": json.dumps("x" * 5000)}, ValueError),
        ("kv.set", {"collection": "w", "key": "k", "value": {"a": 1}}, TypeError),
        ("kv.list", {"collection": "w", "cursor": "bogus"}, ValueError),
    ]
    for op, args, error in cases:
        with pytest.raises(error) as info:
            await dispatch(web_app, "home", 0, op, args)
        assert type(info.value) is error, (op, info.value)
    kv.quota_bytes = 10
    with pytest.raises(ValueError, match="quota exceeded") as quota:
        await dispatch(
            web_app,
            "home",
            0,
            "kv.set",
            {"collection": "w", "key": "k", "value": json.dumps("x" * 50)},
        )
    assert type(quota.value) is ValueError
    with pytest.raises(ValueError, match="does not exist") as gone:
        await dispatch(web_app, "ghost", 0, "kv.set", {"collection": "w", "key": "k", "value": "1"})
    assert type(gone.value) is ValueError


def test_rules_stay_importable_without_the_daemon() -> None:
    code = (
        "import sys; import picloud.kv.rules, picloud.sdk.kv;"
        "daemon = ('aiohttp', 'sqlite3', 'picloud.store', 'picloud.kv.service');"
        "bad = [m for m in daemon if m in sys.modules];"
        "print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_now_is_wall_clock_ms() -> None:
    from picloud.kv.service import _now_ms

    assert abs(_now_ms() - time.time() * 1000) < 1000


# ---- the read cache


async def test_repeat_reads_come_from_the_cache_and_are_never_stale(kv: SqliteKv) -> None:
    await kv.set("home", "w", "k", "1")
    assert kv.get_now("home", "w", "k") == "1"
    hits = kv.cache.hits
    assert kv.get_now("home", "w", "k") == "1"
    assert kv.has_now("home", "w", "k")
    assert kv.cache.hits == hits + 2
    await kv.set("home", "w", "k", "2")
    assert kv.get_now("home", "w", "k") == "2"
    assert await kv.incr("home", "w", "k", 3) == 5
    assert kv.get_now("home", "w", "k") == "5"
    assert await kv.delete("home", "w", "k")
    assert kv.get_now("home", "w", "k") is None
    assert not kv.has_now("home", "w", "k")
    # An absent key is cached as absent, and a set still shows at once.
    await kv.set("home", "w", "k", "6")
    assert kv.get_now("home", "w", "k") == "6"
    # Another app's same key is another entry.
    assert kv.get_now("work", "w", "k") is None


async def test_a_cached_value_expires_on_time(kv: SqliteKv) -> None:
    await kv.set("home", "w", "t", '"soon"', ttl=0.3)
    assert kv.get_now("home", "w", "t") == '"soon"'
    assert kv.get_now("home", "w", "t") == '"soon"'  # from the cache
    await asyncio.sleep(0.35)
    assert kv.get_now("home", "w", "t") is None
    assert not kv.has_now("home", "w", "t")


@pytest.mark.parametrize("durability", ["normal", "full"])
async def test_a_read_during_a_write_is_not_cached(tmp_path: Path, durability: Any) -> None:
    db = Database(tmp_path / "kv.db", durability)
    db.open()
    await db.write(lambda c: app_store.create_app(c, "home"))
    kv = SqliteKv(db, MAX_VALUE, QUOTA, cache_bytes=1 << 20)
    try:
        await kv.set("home", "w", "k", '"old"')
        writes = [asyncio.create_task(kv.set("home", "w", "k", f'"new{i}"')) for i in range(3)]
        await asyncio.sleep(0)  # queued, not yet acknowledged
        # Whatever SQLite says meanwhile is not kept: the write may commit at any moment.
        assert kv.get_now("home", "w", "k") in ('"old"', '"new0"', '"new1"', '"new2"')
        assert ("home", "w", "k") not in kv.cache._entries
        await asyncio.gather(*writes)
        assert kv.get_now("home", "w", "k") == '"new2"'
        kv.quota_bytes = 50  # refused inside the transaction
        failed = asyncio.create_task(kv.set("home", "w", "k", json.dumps("x" * 100)))
        await asyncio.sleep(0)
        kv.get_now("home", "w", "k")
        with pytest.raises(ValueError, match="quota"):
            await failed
        assert kv.get_now("home", "w", "k") == '"new2"'
    finally:
        await db.close()


async def test_deleting_an_app_empties_the_cache(kv: SqliteKv) -> None:
    await kv.set("home", "w", "k", "1")
    assert kv.get_now("home", "w", "k") == "1"
    assert len(kv.cache) == 1
    await kv.db.write(lambda c: app_store.delete_app(c, "home"), bulk=True)
    assert len(kv.cache) == 0
    await kv.db.write(lambda c: app_store.create_app(c, "home"))
    assert kv.get_now("home", "w", "k") is None


def test_the_cache_keeps_to_its_budget() -> None:
    cache = ReadCache(max_bytes=10_000)
    for i in range(1000):
        cache.fill(("a", "c", f"k{i}"), "v" * 50, None)
        assert cache.used <= cache.max_bytes
    assert 0 < len(cache) < 1000
    assert cache.lookup(("a", "c", "k999"), 0) == (True, "v" * 50)  # the newest stays
    assert cache.lookup(("a", "c", "k0"), 0) == (False, None)  # the oldest went first
    cache.fill(("a", "c", "big"), "x" * 100_000, None)  # larger than worth keeping
    assert cache.lookup(("a", "c", "big"), 0) == (False, None)
    off = ReadCache(max_bytes=0)
    off.fill(("a", "c", "k"), "1", None)
    assert len(off) == 0
    used = cache.used
    cache.clear()
    assert (len(cache), cache.used) == (0, 0)
    assert used > 0


async def test_point_reads_check_like_dispatch(web_app: web.Application, kv: SqliteKv) -> None:
    reads = point_reads(web_app)
    await kv.set("home", "w", "k", "[1]")
    assert reads["kv.get"]("home", {"collection": "w", "key": "k"}) == "[1]"
    assert reads["kv.has"]("home", {"collection": "w", "key": "k"}) is True
    assert reads["kv.get"]("work", {"collection": "w", "key": "k"}) is None
    cases: list[tuple[Any, type[Exception]]] = [
        ({"collection": "w"}, TypeError),
        ({"collection": "w", "key": "k", "extra": 1}, TypeError),
        ({"collection": "w", "key": "k", "app": "work"}, ValueError),
        ({"collection": "", "key": "k"}, ValueError),
        ({"collection": "w", "key": ""}, ValueError),
        ({"collection": "w", "key": "x" * 600}, ValueError),
        ({"collection": "w", "key": 7}, TypeError),
    ]
    for op in ("kv.get", "kv.has"):
        for args, error in cases:
            with pytest.raises(error) as info:
                reads[op]("home", args)
            assert type(info.value) is error, (op, args, info.value)


async def test_a_cancelled_write_keeps_its_key_out_of_the_cache_until_it_commits(
    tmp_path: Path,
) -> None:
    db = Database(tmp_path / "kv.db", "full")  # a writer thread we can keep busy
    db.open()
    await db.write(lambda c: app_store.create_app(c, "home"))
    kv = SqliteKv(db, MAX_VALUE, QUOTA, cache_bytes=1 << 20)
    try:
        await kv.set("home", "w", "k", '"old"')
        assert kv.get_now("home", "w", "k") == '"old"'
        busy = asyncio.create_task(db.write(lambda c: time.sleep(0.3), routine=True))
        await asyncio.sleep(0.05)
        write = asyncio.create_task(kv.set("home", "w", "k", '"new"'))
        await asyncio.sleep(0.05)  # queued behind the slow write
        write.cancel()
        await asyncio.sleep(0)
        # The caller is gone, but the store still commits the queued write: what is read
        # now must not be kept, or the cache would answer "old" after the commit.
        assert kv.get_now("home", "w", "k") == '"old"'
        await busy
        # Well within the second after which the data_version watch would clear it anyway.
        for _ in range(30):
            if kv.get_now("home", "w", "k") == '"new"':
                break
            await asyncio.sleep(0.01)
        assert kv.get_now("home", "w", "k") == '"new"'
        assert write.cancelled()
    finally:
        await db.close()


async def test_a_write_by_another_process_shows_within_a_second(kv: SqliteKv) -> None:
    await kv.set("home", "w", "k", '"ours"')
    assert kv.get_now("home", "w", "k") == '"ours"'
    assert kv.get_now("home", "w", "gone") is None  # cached as absent
    other = sqlite3.connect(kv.db.path)
    with other:
        other.execute("UPDATE kv SET value = '\"theirs\"' WHERE key = 'k'")
        other.execute(
            "INSERT INTO kv (app_id, collection, key, value, size, updated_at)"
            " VALUES ('home', 'w', 'gone', '1', 5, 0)"
        )
    other.close()
    await asyncio.sleep(1.05)
    assert kv.get_now("home", "w", "k") == '"theirs"'
    assert kv.get_now("home", "w", "gone") == "1"


def test_the_purge_drops_expired_entries_and_sizes_count_memory() -> None:
    cache = ReadCache(max_bytes=1 << 20)
    cache.fill(("a", "c", "old"), "1", 1_000)
    cache.fill(("a", "c", "later"), "2", 5_000)
    cache.fill(("a", "c", "forever"), "3", None)
    cache.drop_expired(2_000)
    # A clock stepped back to 500 must not bring back a row the purge deleted.
    assert cache.lookup(("a", "c", "old"), 500) == (False, None)
    assert cache.lookup(("a", "c", "later"), 500) == (True, "2")
    assert cache.lookup(("a", "c", "forever"), 500) == (True, "3")
    ascii_used = cache.used
    cache.fill(("a", "c", "emoji"), "😀" * 1000, None)  # 4 bytes a character in memory
    assert cache.used - ascii_used > 4000
