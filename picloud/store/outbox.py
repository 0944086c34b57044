"""The trigger outbox: events written in the same transaction as the change that caused them."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from datetime import UTC, datetime

__all__ = [
    "Event",
    "dead_letter_event",
    "delete_events",
    "enqueue_cron_run",
    "enqueue_kv_event",
    "event_payload",
    "events_after",
    "insert_event",
    "iso_ms",
    "mark_retry",
    "trigger_events",
]

# One row per enabled kv trigger of the app watching this collection and op.
_ENQUEUE_KV = """
INSERT INTO events (trigger_id, app_id, order_key, payload, depth, next_at, created_at)
SELECT id, app_id, ?, ?, ?, ?, ?
FROM triggers
WHERE app_id = ? AND kind = 'kv' AND collection = ? AND enabled = 1
  AND instr(',' || ops || ',', ',' || ? || ',') > 0
"""
# Without the payload (up to a KV value's size): it is read when the event is run.
_EVENT_COLS = "id, trigger_id, app_id, order_key, depth, attempts, next_at, created_at"
_EVENTS_AFTER = f"SELECT {_EVENT_COLS} FROM events WHERE id > ? ORDER BY id LIMIT ?"  # noqa: S608
_TRIGGER_EVENTS = (
    f"SELECT {_EVENT_COLS} FROM events WHERE trigger_id = ? AND id >= ? AND id <= ?"  # noqa: S608
    " ORDER BY id LIMIT ?"
)
_HAS_EVENT = "SELECT 1 FROM events WHERE trigger_id = ? LIMIT 1"
_INSERT_EVENT = """
INSERT INTO events (trigger_id, app_id, order_key, payload, depth, next_at, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""
_CRON_FIRED = "UPDATE triggers SET last_fired_at = ? WHERE id = ?"
_CRON_SKIPPED = (
    "UPDATE triggers SET last_fired_at = ?, skipped_runs = skipped_runs + 1 WHERE id = ?"
)
_MARK_RETRY = """
UPDATE events SET state = 'retrying', attempts = ?, next_at = ?, last_error = ? WHERE id = ?
"""
_INSERT_DEAD = """
INSERT INTO dead_letters (id, app_id, trigger_id, script_id, order_key, event, attempts, error,
                          depth, created_at, handler_script_id, handler_status)
SELECT ?, app_id, trigger_id, ?, order_key, payload, ?, ?, depth, ?, ?, ?
FROM events WHERE id = ?
"""


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """One undelivered event, without its payload (see `event_payload`)."""

    id: int
    trigger_id: str
    app_id: str
    order_key: str
    depth: int
    attempts: int
    next_at: int
    created_at: int


def iso_ms(ms: int) -> str:
    """Unix ms as ISO 8601 UTC with a `Z`, the form every event timestamp takes."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def enqueue_kv_event(
    conn: sqlite3.Connection,
    app_id: str,
    collection: str,
    key: str,
    op: str,
    value_json: str | None,
    depth: int,
) -> int:
    """Record the change's event for every trigger watching it; returns how many.

    Must be called inside the writer transaction that makes the change itself,
    so an acknowledged change never loses its event.
    """
    now_ms = time.time_ns() // 1_000_000
    value = "null" if value_json is None else value_json
    payload = (
        f'{{"type":"kv","op":{json.dumps(op)},"collection":{json.dumps(collection)},'
        f'"key":{json.dumps(key)},"value":{value},"at":"{iso_ms(now_ms)}"}}'
    )
    cur = conn.execute(
        _ENQUEUE_KV,
        (f"{collection}\x00{key}", payload, depth, now_ms, now_ms, app_id, collection, op),
    )
    return cur.rowcount


def enqueue_cron_run(
    conn: sqlite3.Connection, trigger_id: str, app_id: str, schedule: str, at_ms: int
) -> bool | None:
    """Queue the cron run due at `at_ms`, or skip it while an earlier run is still undelivered.

    Either way the trigger's last_fired_at moves to `at_ms` in the same transaction,
    so a restart neither repeats nor forgets the decision. True when queued, False when
    skipped, None when the trigger is gone.
    """
    if conn.execute(_HAS_EVENT, (trigger_id,)).fetchone() is not None:
        return None if conn.execute(_CRON_SKIPPED, (at_ms, trigger_id)).rowcount == 0 else False
    if conn.execute(_CRON_FIRED, (at_ms, trigger_id)).rowcount == 0:
        return None
    payload = json.dumps(
        {"type": "cron", "schedule": schedule, "at": iso_ms(at_ms)}, separators=(",", ":")
    )
    now_ms = time.time_ns() // 1_000_000
    conn.execute(_INSERT_EVENT, (trigger_id, app_id, "cron", payload, 0, now_ms, now_ms))
    return True


def insert_event(
    conn: sqlite3.Connection,
    trigger_id: str,
    app_id: str,
    order_key: str,
    payload: str,
    now_ms: int,
) -> int:
    """A fresh delivery of `payload` (a replayed dead letter): attempts 0, depth 0."""
    cur = conn.execute(_INSERT_EVENT, (trigger_id, app_id, order_key, payload, 0, now_ms, now_ms))
    return int(cur.lastrowid or 0)


def event_payload(conn: sqlite3.Connection, event_id: int) -> str | None:
    """The ctx["event"] JSON of an event, or None when it is gone (its trigger was deleted)."""
    row = conn.execute("SELECT payload FROM events WHERE id = ?", (event_id,)).fetchone()
    return None if row is None else str(row[0])


def events_after(conn: sqlite3.Connection, after_id: int, limit: int) -> list[Event]:
    return [Event(*row) for row in conn.execute(_EVENTS_AFTER, (after_id, limit))]


def trigger_events(
    conn: sqlite3.Connection, trigger_id: str, from_id: int, to_id: int, limit: int
) -> list[Event]:
    """One trigger's events with from_id <= id <= to_id, in order."""
    rows = conn.execute(_TRIGGER_EVENTS, (trigger_id, from_id, to_id, limit))
    return [Event(*row) for row in rows]


def delete_events(conn: sqlite3.Connection, ids: list[int]) -> int:
    """Purge delivered events (one statement per batch)."""
    if not ids:
        return 0
    marks = ",".join("?" * len(ids))
    return conn.execute(f"DELETE FROM events WHERE id IN ({marks})", ids).rowcount  # noqa: S608


def mark_retry(
    conn: sqlite3.Connection, event_id: int, attempts: int, next_at: int, error: str
) -> bool:
    """Record a failed attempt and when the next one is due; False if the event is gone."""
    return conn.execute(_MARK_RETRY, (attempts, next_at, error, event_id)).rowcount > 0


def dead_letter_event(
    conn: sqlite3.Connection,
    event_id: int,
    dead_letter_id: str,
    script_id: str,
    handler_script_id: str | None,
    attempts: int,
    error: str,
    now_ms: int,
) -> bool:
    """Move an event to the dead letters (one transaction); False if the event is gone."""
    status = None if handler_script_id else "none"
    cur = conn.execute(
        _INSERT_DEAD,
        (dead_letter_id, script_id, attempts, error, now_ms, handler_script_id, status, event_id),
    )
    if cur.rowcount == 0:
        return False
    conn.execute("DELETE FROM events WHERE id = ?", (event_id,))
    return True
