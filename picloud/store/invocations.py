"""Invocation records: batched inserts, filtered newest-first listing, one by id."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterable
from typing import Any

__all__ = ["ROW", "Invocation", "Row", "data_version", "get", "insert_many", "list_invocations"]

_SELECT = (
    "SELECT id, app_id, script_id, version, trigger, trigger_id, event_id, status, http_status,"
    " started_at, duration_ms, cpu_ms, peak_memory_kb, cold_start_ms, log, error"
    " FROM invocations"
)
_INSERT = (
    "INSERT OR IGNORE INTO invocations (id, app_id, script_id, version, trigger, trigger_id,"
    " event_id, status, http_status, started_at, duration_ms, cpu_ms, peak_memory_kb,"
    " cold_start_ms, log, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_FILTERS = {"app": "app_id", "script": "script_id", "status": "status", "trigger": "trigger"}


@dataclasses.dataclass(frozen=True, slots=True)
class Invocation:
    id: str
    app_id: str
    script_id: str
    version: int
    trigger: str
    trigger_id: str | None
    event_id: int | None
    status: str
    http_status: int | None
    started_at: int
    duration_ms: float
    cpu_ms: float | None
    peak_memory_kb: int | None
    cold_start_ms: float | None
    log: str
    error: str | None

    def to_json(self, *, with_log: bool = False) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if not with_log:
            data.pop("log")
        return data

    def row(self) -> Row:
        return tuple(getattr(self, name) for name in ROW)


ROW = tuple(f.name for f in dataclasses.fields(Invocation))
Row = tuple[Any, ...]


def insert_many(conn: sqlite3.Connection, rows: Iterable[Row]) -> int:
    """Rows are plain tuples in the order of ROW (cheaper than dataclasses on the hot path).

    Many rows per statement, not executemany: sqlite3 releases the GIL around every
    step, and a step per row made the event loop's thread wait for the GIL once per
    row (measured ~15% of warm execute throughput). Chunks are powers of two, so a
    handful of statements stay in the connection's statement cache.
    """
    rows = list(rows)
    done, count = 0, 0
    while done < len(rows):
        size = _INSERT_CHUNK
        while size > len(rows) - done:
            size //= 2
        chunk = rows[done : done + size]
        count += conn.execute(_insert_sql(size), [v for row in chunk for v in row]).rowcount
        done += size
    return count


_INSERT_CHUNK = 64  # rows per statement: 64 x 16 parameters, far below SQLite's limit
_INSERT_SQL: dict[int, str] = {}


def _insert_sql(rows: int) -> str:
    sql = _INSERT_SQL.get(rows)
    if sql is None:
        one = "(" + ", ".join("?" * len(ROW)) + ")"
        sql = _INSERT.split(" VALUES ")[0] + " VALUES " + ", ".join([one] * rows)
        _INSERT_SQL[rows] = sql
    return sql


def get(conn: sqlite3.Connection, invocation_id: str) -> Invocation | None:
    row = conn.execute(_SELECT + " WHERE id = ?", (invocation_id,)).fetchone()
    return Invocation(*row) if row else None


def list_invocations(
    conn: sqlite3.Connection, filters: dict[str, str], before: str | None, limit: int
) -> list[Invocation]:
    """Newest first; `before` is the last id of the previous page. Fetches `limit` rows."""
    where: list[str] = []
    params: list[Any] = []
    for name, value in filters.items():
        where.append(f"{_FILTERS[name]} = ?")
        params.append(value)
    if before is not None:
        where.append("id < ?")
        params.append(before)
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    # Only fixed column names from _FILTERS reach the SQL text; values are parameters.
    sql = _SELECT + clause + " ORDER BY id DESC LIMIT ?"
    return [Invocation(*row) for row in conn.execute(sql, [*params, limit])]


def data_version(conn: sqlite3.Connection) -> int:
    """SQLite's counter of commits by other connections (for caches of the execute path)."""
    row = conn.execute("PRAGMA data_version").fetchone()
    return int(row[0])
