"""The trigger outbox: events written in the same transaction as the KV change."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime

__all__ = ["enqueue_kv_event"]

# One row per enabled kv trigger of the app watching this collection and op.
_ENQUEUE_KV = """
INSERT INTO events (trigger_id, app_id, order_key, payload, depth, next_at, created_at)
SELECT id, app_id, ?, ?, ?, ?, ?
FROM triggers
WHERE app_id = ? AND kind = 'kv' AND collection = ? AND enabled = 1
  AND instr(',' || ops || ',', ',' || ? || ',') > 0
"""


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
    at = datetime.fromtimestamp(now_ms / 1000, UTC).isoformat(timespec="milliseconds")
    value = "null" if value_json is None else value_json
    payload = (
        f'{{"type":"kv","op":{json.dumps(op)},"collection":{json.dumps(collection)},'
        f'"key":{json.dumps(key)},"value":{value},"at":{json.dumps(at.replace("+00:00", "Z"))}}}'
    )
    cur = conn.execute(
        _ENQUEUE_KV,
        (f"{collection}\x00{key}", payload, depth, now_ms, now_ms, app_id, collection, op),
    )
    return cur.rowcount
