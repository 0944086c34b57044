"""The in-process `KvService` on the SQLite store: validation, TTLs, quota, group commit.

Point reads (`get`, `has`) run on the event loop with `Database.read_now`: a
primary-key lookup costs microseconds, less than a hop to a thread. Writes go
through `Database.write`, so concurrent writes share one commit. Every method
validates its arguments again: the script process checked them first, but
the daemon has the last word.
"""

from __future__ import annotations

import builtins
import functools
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

from picloud.kv import rules
from picloud.kv.api import AppNotFound, CollectionInfo, Page
from picloud.kv.cache import ReadCache
from picloud.store import Database, invocations
from picloud.store import apps as app_store
from picloud.store import kv as store

__all__ = ["SqliteKv"]

T = TypeVar("T")
# Characters of values a list page may read on the event loop before moving to a thread.
LOOP_BUDGET = 64 * 1024
# Rows deleted per purge transaction: short enough not to hold up other writes.
PURGE_BATCH = 500


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class SqliteKv:
    """The KV store of every app, on the daemon's one SQLite database."""

    def __init__(
        self, db: Database, max_value_bytes: int, quota_bytes: int, cache_bytes: int = 0
    ) -> None:
        self.db = db
        self.max_value_bytes = max_value_bytes
        self.quota_bytes = quota_bytes
        self.cache = ReadCache(cache_bytes)
        # Deleting an app removes its rows by cascade, outside the per-key marks below.
        db.on_config_commit(self.cache.clear)
        self._data_version = -1
        self._checked_ms = 0

    def _watch_other_writers(self, now: int) -> None:
        """Once a second: a commit by any other connection (the sqlite3 shell too) empties
        the cache. Ours count as well (the loop's reads use their own connection), which
        costs one miss per cached key per second of writes."""
        self._checked_ms = now
        version = self.db.read_now(invocations.data_version)
        if version != self._data_version:
            self._data_version = version
            self.cache.clear()

    async def get(self, app_id: str, collection: str, key: str) -> str | None:
        return self.get_now(app_id, collection, key)

    async def has(self, app_id: str, collection: str, key: str) -> bool:
        return self.has_now(app_id, collection, key)

    # Point reads never wait: the broker calls these directly, without a task per call.

    def get_now(self, app_id: str, collection: str, key: str) -> str | None:
        rules.check_collection(collection)
        rules.check_key(key)
        now = _now_ms()
        if not -1000 < now - self._checked_ms < 1000:
            self._watch_other_writers(now)
        where = (app_id, collection, key)
        hit, value = self.cache.lookup(where, now)
        if hit:
            return value
        row = self.db.read_now(lambda c: store.lookup(c, app_id, collection, key))
        if row is None:
            self.cache.fill(where, None, None)
            return None
        self.cache.fill(where, *row)
        value, expires_at = row
        return value if expires_at is None or expires_at > now else None

    def has_now(self, app_id: str, collection: str, key: str) -> bool:
        return self.get_now(app_id, collection, key) is not None

    async def set(
        self,
        app_id: str,
        collection: str,
        key: str,
        value_json: str,
        *,
        ttl: float | None = None,
        depth: int = 0,
    ) -> str:
        rules.check_collection(collection)
        size = rules.check_key(key) + rules.check_value_json(value_json, self.max_value_bytes)
        seconds = rules.check_ttl(ttl)
        quota = self.quota_bytes

        def write(conn: sqlite3.Connection) -> str:
            now = _now_ms()
            expires_at = None if seconds is None else now + round(seconds * 1000)
            return store.put(
                conn, app_id, collection, key, value_json, size, expires_at, now, quota, depth
            )

        return await self._write_key((app_id, collection, key), write)

    async def delete(self, app_id: str, collection: str, key: str, *, depth: int = 0) -> bool:
        rules.check_collection(collection)
        rules.check_key(key)
        return await self._write_key(
            (app_id, collection, key),
            lambda c: store.remove(c, app_id, collection, key, _now_ms(), depth),
        )

    async def incr(
        self, app_id: str, collection: str, key: str, by: int = 1, *, depth: int = 0
    ) -> int:
        rules.check_collection(collection)
        key_bytes = rules.check_key(key)
        rules.check_by(by)
        quota = self.quota_bytes

        def write(conn: sqlite3.Connection) -> int:
            now = _now_ms()
            return store.increment(conn, app_id, collection, key, key_bytes, by, now, quota, depth)

        return await self._write_key((app_id, collection, key), write)

    async def list(
        self,
        app_id: str,
        collection: str,
        *,
        prefix: str = "",
        limit: int = rules.DEFAULT_LIST_LIMIT,
        cursor: str | None = None,
    ) -> Page:
        rules.check_collection(collection)
        rules.check_prefix(prefix)
        rules.check_limit(limit)
        last = rules.decode_cursor(cursor, collection, prefix)
        # The successor of `last` in byte order is `last + "\0"`: resume just after it.
        start = prefix if last is None or last < prefix else last + "\0"
        # One row past the page tells whether there is more.
        span = store.Span(app_id, collection, start, rules.prefix_end(prefix), limit + 1)
        now = _now_ms()
        # Small pages are read on the loop (a thread hop costs more than the query);
        # a page whose values pass the budget is read again on a reader thread.
        items = self.db.read_now(lambda c: store.page_within(c, span, now, LOOP_BUDGET))
        if items is None:
            items = await self.db.read(lambda c: store.page(c, span, now))
        if len(items) <= limit:
            return Page(items, None)
        del items[limit:]
        return Page(items, rules.encode_cursor(collection, prefix, items[-1].key))

    async def collections(
        self, app_id: str, *, after: str = "", limit: int = rules.DEFAULT_LIST_LIMIT
    ) -> builtins.list[CollectionInfo]:
        # Callers ask for one row past their page (up to 1000 + 1) to know whether there is more.
        if limit < 1:
            raise ValueError("limit must be positive")
        now = _now_ms()
        return await self.db.read(lambda c: store.collections(c, app_id, after, now, limit))

    async def usage(self, app_id: str) -> int:
        return self.db.read_now(lambda c: store.usage(c, app_id))

    async def app_exists(self, app_id: str) -> bool:
        return self.db.read_now(lambda c: app_store.app_exists(c, app_id))

    async def purge_expired(self) -> int:
        """Delete every expired row, one bounded transaction at a time."""
        total = 0
        while self.db.read_now(lambda c: store.purge_due(c, _now_ms())):
            done = await self.db.write(
                lambda c: store.purge_expired(c, _now_ms(), PURGE_BATCH), routine=True, bulk=True
            )
            total += done
            self.cache.drop_expired(_now_ms())
            if done < PURGE_BATCH:
                break
        return total

    async def _write_key(
        self, where: tuple[str, str, str], fn: Callable[[sqlite3.Connection], T]
    ) -> T:
        """A write of one key. Its cache entry stays out until the write has settled, even
        if the caller is cancelled first: the store commits a queued write regardless."""
        self.cache.mark(where)
        return await self._write(where[0], fn, functools.partial(self.cache.unmark, where))

    async def _write(
        self,
        app_id: str,
        fn: Callable[[sqlite3.Connection], T],
        settled: Callable[[], None] | None = None,
    ) -> T:
        try:
            return await self.db.write(fn, routine=True, settled=settled)
        except sqlite3.IntegrityError:
            # The only constraint a KV write can break is the app's foreign key.
            raise AppNotFound(f"app {app_id!r} does not exist") from None
