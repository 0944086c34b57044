"""KV rows: every SQL string of the key-value store, its usage counter and TTL purge.

Reads take `now_ms` and hide expired rows; writes run inside the writer's
transaction and record their trigger event there too (the outbox), so an
acknowledged change never loses its event. Expired rows stay counted in
`kv_usage` until the purge deletes them; their expiry fires no event.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from typing import NamedTuple

from picloud.kv.rules import INT64_MAX, INT64_MIN, QuotaExceeded
from picloud.store.outbox import enqueue_kv_event

__all__ = [
    "CollectionInfo",
    "Item",
    "Span",
    "collections",
    "increment",
    "lookup",
    "page",
    "page_within",
    "purge_due",
    "purge_expired",
    "put",
    "remove",
    "usage",
]

_OLD = "SELECT value, size, expires_at FROM kv WHERE app_id = ? AND collection = ? AND key = ?"
_UPSERT = """
INSERT INTO kv (app_id, collection, key, value, size, expires_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (app_id, collection, key) DO UPDATE SET
    value = excluded.value, size = excluded.size,
    expires_at = excluded.expires_at, updated_at = excluded.updated_at
"""
_DELETE = """
DELETE FROM kv WHERE app_id = ? AND collection = ? AND key = ? RETURNING size, expires_at
"""
# A page is one range scan of the primary key: O(page), whatever the collection's size.
_PAGE = """
SELECT key, value FROM kv
WHERE app_id = ? AND collection = ? AND key >= ? AND (expires_at IS NULL OR expires_at > ?)
ORDER BY key LIMIT ?
"""
_PAGE_BOUNDED = """
SELECT key, value FROM kv
WHERE app_id = ? AND collection = ? AND key >= ? AND key < ?
  AND (expires_at IS NULL OR expires_at > ?)
ORDER BY key LIMIT ?
"""
_COLLECTIONS = """
SELECT collection, count(*) FROM kv
WHERE app_id = ? AND collection > ? AND (expires_at IS NULL OR expires_at > ?)
GROUP BY collection ORDER BY collection LIMIT ?
"""
_USAGE = "SELECT bytes FROM kv_usage WHERE app_id = ?"
_ADD_USAGE = """
INSERT INTO kv_usage (app_id, bytes) VALUES (?, ?)
ON CONFLICT (app_id) DO UPDATE SET bytes = bytes + excluded.bytes
"""
_DUE = "SELECT 1 FROM kv WHERE expires_at <= ? LIMIT 1"
_PURGE = """
DELETE FROM kv WHERE (app_id, collection, key) IN (
    SELECT app_id, collection, key FROM kv WHERE expires_at <= ? ORDER BY expires_at LIMIT ?
) RETURNING app_id, size
"""


class Item(NamedTuple):
    key: str
    value: str  # the value's JSON text


@dataclasses.dataclass(frozen=True, slots=True)
class CollectionInfo:
    name: str
    count: int  # live keys


# ---- reads


def lookup(
    conn: sqlite3.Connection, app_id: str, collection: str, key: str
) -> tuple[str, int | None] | None:
    """(value JSON, expires_at) of the row at `key`, expired or not; None if there is none."""
    row = conn.execute(_OLD, (app_id, collection, key)).fetchone()
    return None if row is None else (row[0], row[2])


class Span(NamedTuple):
    """Up to `limit` keys of one collection with `start <= key < end` (end None: no bound)."""

    app_id: str
    collection: str
    start: str
    end: str | None
    limit: int


def page(conn: sqlite3.Connection, span: Span, now: int) -> list[Item]:
    """The live items of `span`, in key order."""
    return [Item(k, v) for k, v in _rows(conn, span, now)]


def page_within(conn: sqlite3.Connection, span: Span, now: int, budget: int) -> list[Item] | None:
    """`page`, or None as soon as its values pass `budget` characters (read it elsewhere)."""
    rows = _rows(conn, span, now)
    items = []
    for key, value in rows:
        budget -= len(value)
        if budget < 0:
            rows.close()
            return None
        items.append(Item(key, value))
    return items


def _rows(conn: sqlite3.Connection, span: Span, now: int) -> sqlite3.Cursor:
    app_id, collection, start, end, limit = span
    if end is None:
        return conn.execute(_PAGE, (app_id, collection, start, now, limit))
    return conn.execute(_PAGE_BOUNDED, (app_id, collection, start, end, now, limit))


def collections(
    conn: sqlite3.Connection, app_id: str, after: str, now: int, limit: int
) -> list[CollectionInfo]:
    rows = conn.execute(_COLLECTIONS, (app_id, after, now, limit))
    return [CollectionInfo(name, count) for name, count in rows]


def usage(conn: sqlite3.Connection, app_id: str) -> int:
    row = conn.execute(_USAGE, (app_id,)).fetchone()
    return 0 if row is None else int(row[0])


def purge_due(conn: sqlite3.Connection, now: int) -> bool:
    """Is any row expired? (an index probe, so the purge task costs nothing when idle)."""
    return conn.execute(_DUE, (now,)).fetchone() is not None


# ---- writes (inside the writer's transaction)


def put(
    conn: sqlite3.Connection,
    app_id: str,
    collection: str,
    key: str,
    value_json: str,
    size: int,
    expires_at: int | None,
    now: int,
    quota: int,
    depth: int,
) -> str:
    """Insert or replace a value; returns the event op: "insert" or "update"."""
    old = conn.execute(_OLD, (app_id, collection, key)).fetchone()
    live = old is not None and (old[2] is None or old[2] > now)
    _charge(conn, app_id, size - (old[1] if old is not None else 0), quota)
    conn.execute(_UPSERT, (app_id, collection, key, value_json, size, expires_at, now))
    op = "update" if live else "insert"
    enqueue_kv_event(conn, app_id, collection, key, op, value_json, depth)
    return op


def increment(
    conn: sqlite3.Connection,
    app_id: str,
    collection: str,
    key: str,
    key_bytes: int,
    by: int,
    now: int,
    quota: int,
    depth: int,
) -> int:
    """Add `by` to an integer value (absent = 0), keeping its expiry; returns the new value."""
    old = conn.execute(_OLD, (app_id, collection, key)).fetchone()
    live = old is not None and (old[2] is None or old[2] > now)
    current = _integer(json.loads(old[0]), key) if live else 0
    new = current + by
    if not INT64_MIN <= new <= INT64_MAX:
        raise ValueError(f"incr of key {key!r:.80} would overflow a signed 64-bit integer")
    text = str(new)
    size = key_bytes + len(text)
    _charge(conn, app_id, size - (old[1] if old is not None else 0), quota)
    expires_at = old[2] if live else None
    conn.execute(_UPSERT, (app_id, collection, key, text, size, expires_at, now))
    enqueue_kv_event(conn, app_id, collection, key, "update" if live else "insert", text, depth)
    return new


def remove(
    conn: sqlite3.Connection, app_id: str, collection: str, key: str, now: int, depth: int
) -> bool:
    """Delete a key; returns whether it was present (an expired row was not)."""
    rows = conn.execute(_DELETE, (app_id, collection, key)).fetchall()
    if not rows:
        return False
    size, expires_at = rows[0]
    _charge(conn, app_id, -size, None)
    if expires_at is not None and expires_at <= now:
        return False
    enqueue_kv_event(conn, app_id, collection, key, "delete", None, depth)
    return True


def purge_expired(conn: sqlite3.Connection, now: int, limit: int) -> int:
    """Delete up to `limit` expired rows, giving their bytes back; returns how many."""
    rows = conn.execute(_PURGE, (now, limit)).fetchall()
    freed: dict[str, int] = {}
    for app_id, size in rows:
        freed[app_id] = freed.get(app_id, 0) + size
    for app_id, size in freed.items():
        _charge(conn, app_id, -size, None)
    return len(rows)


def _charge(conn: sqlite3.Connection, app_id: str, delta: int, quota: int | None) -> None:
    """Move the app's usage by `delta` bytes; QuotaExceeded if growing past `quota`."""
    if delta == 0:
        return
    if delta > 0 and quota is not None:
        used = usage(conn, app_id)
        if used + delta > quota:
            raise QuotaExceeded(
                f"quota exceeded: app {app_id!r} holds {used} of {quota} KV bytes "
                f"and this write needs {delta} more"
            )
    conn.execute(_ADD_USAGE, (app_id, delta))


def _integer(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"incr: the value of key {key!r:.80} is a {_json_type(value)}, not an int")
    return value


def _json_type(value: object) -> str:
    names = {bool: "bool", float: "float", str: "str", list: "list", dict: "dict"}
    return "None" if value is None else names.get(type(value), type(value).__name__)
