"""Triggers and dead letters: every SQL string the trigger admin and dispatcher need."""

from __future__ import annotations

import dataclasses
import sqlite3
from typing import Any

from picloud.store.outbox import insert_event

__all__ = [
    "DeadLetter",
    "Trigger",
    "all_triggers",
    "dead_letter",
    "delete_dead_letter",
    "delete_trigger",
    "event_counts",
    "get_trigger",
    "insert_trigger",
    "list_dead_letters",
    "list_triggers",
    "record_handler",
    "replay_dead_letter",
    "script_app",
    "unhandled_dead_letters",
    "update_trigger",
]

_T_COLS = (
    "id, app_id, kind, script_id, dead_letter_script_id, collection, ops, schedule, timezone,"
    " max_attempts, backoff_base_ms, backoff_max_ms, enabled, created_at, last_fired_at,"
    " skipped_runs"
)
_D_COLS = (
    "id, app_id, trigger_id, script_id, order_key, event, attempts, error, depth, created_at,"
    " handler_script_id, handler_status, handler_error, replayed_at, replays"
)
# Fields PATCH may change (the column names are fixed here, never taken from a request).
_UPDATABLE = (
    "script_id",
    "dead_letter_script_id",
    "collection",
    "ops",
    "schedule",
    "timezone",
    "max_attempts",
    "backoff_base_ms",
    "backoff_max_ms",
    "enabled",
    "last_fired_at",
)
_COUNTS = """
SELECT trigger_id, state, count(*) FROM events WHERE trigger_id IN ({marks})
GROUP BY trigger_id, state
"""
_DEAD_COUNTS = """
SELECT trigger_id, count(*) FROM dead_letters WHERE trigger_id IN ({marks}) GROUP BY trigger_id
"""


@dataclasses.dataclass(frozen=True, slots=True)
class Trigger:
    id: str
    app_id: str
    kind: str
    script_id: str
    dead_letter_script_id: str | None
    collection: str | None
    ops: str | None
    schedule: str | None
    timezone: str | None
    max_attempts: int
    backoff_base_ms: int
    backoff_max_ms: int
    enabled: bool
    created_at: int
    last_fired_at: int | None
    skipped_runs: int

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Trigger:
        values = list(row)
        values[12] = bool(values[12])
        return cls(*values)


@dataclasses.dataclass(frozen=True, slots=True)
class DeadLetter:
    id: str
    app_id: str
    trigger_id: str | None
    script_id: str
    order_key: str
    event: str
    attempts: int
    error: str
    depth: int
    created_at: int
    handler_script_id: str | None
    handler_status: str | None
    handler_error: str | None
    replayed_at: int | None
    replays: int


# ---- references


def script_app(conn: sqlite3.Connection, script_id: str) -> str | None:
    """The app a script belongs to, or None when there is no such script."""
    row = conn.execute("SELECT app_id FROM scripts WHERE id = ?", (script_id,)).fetchone()
    return None if row is None else str(row[0])


# ---- triggers


def insert_trigger(conn: sqlite3.Connection, t: Trigger) -> None:
    marks = ",".join("?" * len(dataclasses.fields(t)))
    values = [getattr(t, f.name) for f in dataclasses.fields(t)]
    conn.execute(f"INSERT INTO triggers ({_T_COLS}) VALUES ({marks})", values)  # noqa: S608


def get_trigger(conn: sqlite3.Connection, trigger_id: str) -> Trigger | None:
    row = conn.execute(
        f"SELECT {_T_COLS} FROM triggers WHERE id = ?",  # noqa: S608
        (trigger_id,),
    ).fetchone()
    return None if row is None else Trigger.from_row(row)


def all_triggers(conn: sqlite3.Connection) -> list[Trigger]:
    rows = conn.execute(f"SELECT {_T_COLS} FROM triggers ORDER BY id")  # noqa: S608
    return [Trigger.from_row(row) for row in rows]


def list_triggers(
    conn: sqlite3.Connection, app_id: str | None, after: str | None, limit: int
) -> list[Trigger]:
    """One page ordered by id; fetch limit+1 to learn whether there is more."""
    sql = (
        f"SELECT {_T_COLS} FROM triggers WHERE (? IS NULL OR app_id = ?)"  # noqa: S608
        " AND (? IS NULL OR id > ?) ORDER BY id LIMIT ?"
    )
    rows = conn.execute(sql, (app_id, app_id, after, after, limit))
    return [Trigger.from_row(row) for row in rows]


def update_trigger(conn: sqlite3.Connection, trigger_id: str, changes: dict[str, Any]) -> bool:
    """Apply `changes` (keys from _UPDATABLE only); False when the trigger does not exist."""
    names = [name for name in _UPDATABLE if name in changes]
    if set(changes) - set(names):
        raise ValueError(f"not updatable: {sorted(set(changes) - set(names))}")
    if not names:
        return get_trigger(conn, trigger_id) is not None
    sets = ", ".join(f"{name} = ?" for name in names)
    values = [int(v) if isinstance(v, bool) else v for v in (changes[n] for n in names)]
    cur = conn.execute(
        f"UPDATE triggers SET {sets} WHERE id = ?",  # noqa: S608
        [*values, trigger_id],
    )
    return cur.rowcount > 0


def delete_trigger(conn: sqlite3.Connection, trigger_id: str) -> bool:
    """Delete a trigger and (by cascade) its undelivered events; dead letters stay."""
    return conn.execute("DELETE FROM triggers WHERE id = ?", (trigger_id,)).rowcount > 0


def event_counts(conn: sqlite3.Connection, ids: list[str]) -> dict[str, dict[str, int]]:
    """{trigger id: {"pending": n, "retrying": n, "dead": n}} for the given triggers."""
    counts = {tid: {"pending": 0, "retrying": 0, "dead": 0} for tid in ids}
    if not ids:
        return counts
    marks = ",".join("?" * len(ids))
    for tid, state, n in conn.execute(_COUNTS.format(marks=marks), ids):
        counts[tid][state] = n
    for tid, n in conn.execute(_DEAD_COUNTS.format(marks=marks), ids):
        counts[tid]["dead"] = n
    return counts


# ---- dead letters


def dead_letter(conn: sqlite3.Connection, dead_letter_id: str) -> DeadLetter | None:
    row = conn.execute(
        f"SELECT {_D_COLS} FROM dead_letters WHERE id = ?",  # noqa: S608
        (dead_letter_id,),
    ).fetchone()
    return None if row is None else DeadLetter(*row)


def list_dead_letters(
    conn: sqlite3.Connection,
    *,
    app_id: str | None,
    trigger_id: str | None,
    script_id: str | None,
    before: str | None,
    limit: int,
) -> list[DeadLetter]:
    """Newest first; `before` is the cursor (the last id seen)."""
    sql = (
        f"SELECT {_D_COLS} FROM dead_letters WHERE (? IS NULL OR app_id = ?)"  # noqa: S608
        " AND (? IS NULL OR trigger_id = ?) AND (? IS NULL OR script_id = ?)"
        " AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?"
    )
    params = (app_id, app_id, trigger_id, trigger_id, script_id, script_id, before, before, limit)
    return [DeadLetter(*row) for row in conn.execute(sql, params)]


def delete_dead_letter(conn: sqlite3.Connection, dead_letter_id: str) -> bool:
    return conn.execute("DELETE FROM dead_letters WHERE id = ?", (dead_letter_id,)).rowcount > 0


def record_handler(
    conn: sqlite3.Connection, dead_letter_id: str, status: str, error: str | None
) -> None:
    """The dead-letter script's one run: ok, or error with its message."""
    conn.execute(
        "UPDATE dead_letters SET handler_status = ?, handler_error = ? WHERE id = ?",
        (status, error, dead_letter_id),
    )


def unhandled_dead_letters(conn: sqlite3.Connection, limit: int) -> list[DeadLetter]:
    """Dead letters whose dead-letter script has not run yet (e.g. the daemon stopped first)."""
    sql = (
        f"SELECT {_D_COLS} FROM dead_letters WHERE handler_status IS NULL"  # noqa: S608
        " ORDER BY id LIMIT ?"
    )
    return [DeadLetter(*row) for row in conn.execute(sql, (limit,))]


def replay_dead_letter(conn: sqlite3.Connection, dead_letter_id: str, now_ms: int) -> int | None:
    """Queue the original event again as a fresh delivery; its new event id, None if gone.

    The trigger must still exist (checked by the caller inside the same write).
    """
    dl = dead_letter(conn, dead_letter_id)
    if dl is None or dl.trigger_id is None:
        return None
    event_id = insert_event(conn, dl.trigger_id, dl.app_id, dl.order_key, dl.event, now_ms)
    conn.execute(
        "UPDATE dead_letters SET replayed_at = ?, replays = replays + 1 WHERE id = ?",
        (now_ms, dead_letter_id),
    )
    return event_id
