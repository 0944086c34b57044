"""SQL of housekeeping: retention (prune, vacuum) and the figures ops reads for /metrics.

Each prune deletes at most `batch` rows so one call is one short write
transaction; the ops loop calls it again until it returns fewer than `batch`.
"""

from __future__ import annotations

import dataclasses
import sqlite3

__all__ = [
    "InvocationRow",
    "PageStats",
    "StoreFigures",
    "invocations_after",
    "max_invocation_rowid",
    "store_figures",
    "incremental_vacuum",
    "page_stats",
    "prune_delivered_events",
    "prune_invocations_before",
    "prune_script_versions",
    "invocation_count_cutoff",
]

_INVOCATIONS_BEFORE = """
DELETE FROM invocations WHERE rowid IN (
    SELECT rowid FROM invocations WHERE started_at < ? ORDER BY started_at LIMIT ?)
"""
# The start time of the Nth newest invocation (OFFSET N-1): everything older goes.
_NTH_NEWEST_STARTED = "SELECT started_at FROM invocations ORDER BY started_at DESC LIMIT 1 OFFSET ?"
_DELIVERED_EVENTS = """
DELETE FROM events WHERE id IN (
    SELECT id FROM events WHERE state = 'delivered' AND created_at < ? LIMIT ?)
"""
# Versions beyond the newest `keep` of each script, never the script's current one.
_OLD_VERSIONS = """
SELECT r.script_id, r.version FROM (
    SELECT script_id, version,
           ROW_NUMBER() OVER (PARTITION BY script_id ORDER BY version DESC) AS rn
    FROM script_versions) AS r
JOIN scripts s ON s.id = r.script_id
WHERE r.rn > ? AND r.version != s.version
LIMIT ?
"""
_DELETE_VERSION = "DELETE FROM script_versions WHERE script_id = ? AND version = ?"

# The metrics tail: invocations are read by rowid, which only grows while the newest row is kept
# (retention removes the oldest), so each row is counted once.
_MAX_INVOCATION_ROWID = "SELECT coalesce(max(rowid), 0) FROM invocations"
_INVOCATIONS_AFTER = """
SELECT rowid, script_id, status, trigger, duration_ms FROM invocations
WHERE rowid > ? ORDER BY rowid LIMIT ?
"""
_DEAD_LETTERS_AFTER = (
    "SELECT rowid, app_id FROM dead_letters WHERE rowid > ? ORDER BY rowid LIMIT ?"
)
_BACKLOG = """
SELECT state, count(*) FROM events WHERE state IN ('pending', 'retrying') GROUP BY state
"""
_DEAD_LETTER_COUNT = "SELECT count(*) FROM dead_letters"
_KV_BYTES = "SELECT app_id, bytes FROM kv_usage"
_COUNTS = "SELECT (SELECT count(*) FROM apps), (SELECT count(*) FROM scripts)"


@dataclasses.dataclass(frozen=True, slots=True)
class PageStats:
    page_size: int
    page_count: int
    freelist_count: int
    auto_vacuum: int  # 0 none, 1 full, 2 incremental

    @property
    def size_bytes(self) -> int:
        return self.page_size * self.page_count

    @property
    def free_bytes(self) -> int:
        return self.page_size * self.freelist_count


def page_stats(conn: sqlite3.Connection) -> PageStats:
    def pragma(name: str) -> int:
        return int(conn.execute(f"PRAGMA {name}").fetchone()[0])

    return PageStats(
        pragma("page_size"), pragma("page_count"), pragma("freelist_count"), pragma("auto_vacuum")
    )


def invocation_count_cutoff(conn: sqlite3.Connection, keep: int) -> int | None:
    """The started_at of the `keep`-th newest invocation: older ones go (None: fewer exist)."""
    if keep <= 0:
        return 2**62  # keep none
    row = conn.execute(_NTH_NEWEST_STARTED, (keep - 1,)).fetchone()
    return int(row[0]) if row else None


def prune_invocations_before(conn: sqlite3.Connection, cutoff_ms: int, batch: int) -> int:
    """Delete up to `batch` of the oldest invocations started before `cutoff_ms` (logs too)."""
    return conn.execute(_INVOCATIONS_BEFORE, (cutoff_ms, batch)).rowcount


def prune_delivered_events(conn: sqlite3.Connection, cutoff_ms: int, batch: int) -> int:
    """Delete up to `batch` delivered outbox events created before `cutoff_ms`."""
    return conn.execute(_DELIVERED_EVENTS, (cutoff_ms, batch)).rowcount


def prune_script_versions(conn: sqlite3.Connection, keep: int, batch: int) -> int:
    """Delete up to `batch` versions older than each script's newest `keep` (never current)."""
    rows = conn.execute(_OLD_VERSIONS, (max(keep, 1), batch)).fetchall()
    conn.executemany(_DELETE_VERSION, rows)
    return len(rows)


def incremental_vacuum(conn: sqlite3.Connection, pages: int) -> int:
    """Give up to `pages` free pages back to the file system; returns the pages still free.

    Each step of the pragma frees one page, and Python's sqlite3 steps a statement
    that returns no columns only once (fetchall does not step it again), so
    `incremental_vacuum(N)` frees a single page: we run it once per page instead.
    """
    for _ in range(max(int(pages), 0)):
        conn.execute("PRAGMA incremental_vacuum(1)")
    return int(conn.execute("PRAGMA freelist_count").fetchone()[0])


@dataclasses.dataclass(frozen=True, slots=True)
class InvocationRow:
    rowid: int
    script_id: str
    status: str
    trigger: str
    duration_ms: float


@dataclasses.dataclass(frozen=True, slots=True)
class StoreFigures:
    """Gauges read at scrape time."""

    pages: PageStats
    events_backlog: dict[str, int]  # pending / retrying
    dead_letters: int
    kv_bytes: dict[str, int]  # per app
    apps: int
    scripts: int


def max_invocation_rowid(conn: sqlite3.Connection) -> int:
    """The newest invocation's rowid: where the metrics tail starts."""
    return int(conn.execute(_MAX_INVOCATION_ROWID).fetchone()[0])


def invocations_after(
    conn: sqlite3.Connection, rowid: int, limit: int = 5000
) -> list[InvocationRow]:
    rows = conn.execute(_INVOCATIONS_AFTER, (rowid, limit)).fetchall()
    return [InvocationRow(int(r[0]), r[1], r[2], r[3], float(r[4])) for r in rows]


def store_figures(conn: sqlite3.Connection) -> StoreFigures:
    apps, scripts = conn.execute(_COUNTS).fetchone()
    return StoreFigures(
        pages=page_stats(conn),
        events_backlog={state: int(n) for state, n in conn.execute(_BACKLOG)},
        dead_letters=int(conn.execute(_DEAD_LETTER_COUNT).fetchone()[0]),
        kv_bytes={app: int(n) for app, n in conn.execute(_KV_BYTES)},
        apps=int(apps),
        scripts=int(scripts),
    )
