"""Apps, their API keys and their secrets: every SQL statement over those tables."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

__all__ = [
    "ApiKey",
    "App",
    "app_exists",
    "app_secrets",
    "create_app",
    "create_key",
    "delete_app",
    "delete_secret",
    "get_app",
    "key_matches",
    "list_apps",
    "list_keys",
    "revoke_key",
    "secret_names",
    "set_secret",
    "touch_key",
]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class App:
    id: str
    created_at: int
    scripts: int = 0
    keys: int = 0
    secrets: int = 0
    kv_bytes: int = 0


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    app_id: str
    prefix: str
    created_at: int
    last_used_at: int | None


_APP_SELECT = (
    "SELECT a.id, a.created_at,"
    " (SELECT count(*) FROM scripts s WHERE s.app_id = a.id),"
    " (SELECT count(*) FROM api_keys k WHERE k.app_id = a.id),"
    " (SELECT count(*) FROM secrets x WHERE x.app_id = a.id),"
    " coalesce((SELECT u.bytes FROM kv_usage u WHERE u.app_id = a.id), 0)"
    " FROM apps a"
)
_GET_APP = _APP_SELECT + " WHERE a.id = ?"
_LIST_APPS = _APP_SELECT + " WHERE a.id > ? ORDER BY a.id LIMIT ?"


def _app(row: tuple[str, int, int, int, int, int]) -> App:
    return App(*row)


def create_app(conn: sqlite3.Connection, app_id: str) -> App | None:
    """The new app, or None when the id is taken."""
    cur = conn.execute(
        "INSERT INTO apps (id, created_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
        (app_id, now_ms()),
    )
    return get_app(conn, app_id) if cur.rowcount else None


def get_app(conn: sqlite3.Connection, app_id: str) -> App | None:
    row = conn.execute(_GET_APP, (app_id,)).fetchone()
    return _app(row) if row else None


def app_exists(conn: sqlite3.Connection, app_id: str) -> bool:
    return conn.execute("SELECT 1 FROM apps WHERE id = ?", (app_id,)).fetchone() is not None


def list_apps(conn: sqlite3.Connection, after: str | None, limit: int) -> list[App]:
    """Apps in id order after `after`, at most `limit` of them."""
    rows = conn.execute(
        _LIST_APPS,
        (after or "", limit),
    ).fetchall()
    return [_app(r) for r in rows]


def delete_app(conn: sqlite3.Connection, app_id: str) -> bool:
    """Deletes the app and everything it owns (docs/decisions.md, "Admin API").

    Foreign keys cascade to keys, secrets, scripts and their versions, KV,
    triggers with their pending events, and dead letters; invocation records
    carry no foreign key (they are written in batches), so they go here.
    """
    if not conn.execute("DELETE FROM apps WHERE id = ?", (app_id,)).rowcount:
        return False
    conn.execute("DELETE FROM invocations WHERE app_id = ?", (app_id,))
    return True


# ---- API keys


def create_key(
    conn: sqlite3.Connection, key_id: str, app_id: str, key_hash: str, prefix: str
) -> ApiKey:
    created = now_ms()
    conn.execute(
        "INSERT INTO api_keys (id, app_id, hash, prefix, created_at) VALUES (?, ?, ?, ?, ?)",
        (key_id, app_id, key_hash, prefix, created),
    )
    return ApiKey(key_id, app_id, prefix, created, None)


def list_keys(conn: sqlite3.Connection, app_id: str, after: str | None, limit: int) -> list[ApiKey]:
    rows = conn.execute(
        "SELECT id, app_id, prefix, created_at, last_used_at FROM api_keys"
        " WHERE app_id = ? AND id > ? ORDER BY id LIMIT ?",
        (app_id, after or "", limit),
    ).fetchall()
    return [ApiKey(*r) for r in rows]


def revoke_key(conn: sqlite3.Connection, app_id: str, key_id: str) -> bool:
    """Revoking deletes the row: a revoked key can never match again."""
    cur = conn.execute("DELETE FROM api_keys WHERE app_id = ? AND id = ?", (app_id, key_id))
    return cur.rowcount > 0


def key_matches(conn: sqlite3.Connection, app_id: str, key_hash: str) -> bool:
    """Whether an unrevoked key of the app has this sha256 hash (read-only)."""
    row = conn.execute(
        "SELECT 1 FROM api_keys WHERE hash = ? AND app_id = ?", (key_hash, app_id)
    ).fetchone()
    return row is not None


def touch_key(conn: sqlite3.Connection, key_hash: str, at_ms: int | None = None) -> None:
    """Records a key's last use (a write: call through `Database.write`)."""
    conn.execute(
        "UPDATE api_keys SET last_used_at = ? WHERE hash = ?", (at_ms or now_ms(), key_hash)
    )


# ---- secrets


def app_secrets(conn: sqlite3.Connection, app_id: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT name, value FROM secrets WHERE app_id = ? ORDER BY name", (app_id,)
    ).fetchall()
    return {name: value for name, value in rows}


def secret_names(
    conn: sqlite3.Connection, app_id: str, after: str | None, limit: int
) -> list[tuple[str, int]]:
    """(name, updated_at) of the app's secrets after `after`; values never leave through here."""
    rows = conn.execute(
        "SELECT name, updated_at FROM secrets WHERE app_id = ? AND name > ? ORDER BY name LIMIT ?",
        (app_id, after or "", limit),
    ).fetchall()
    return [(name, updated) for name, updated in rows]


def set_secret(conn: sqlite3.Connection, app_id: str, name: str, value: str) -> bool:
    """Sets the secret; True when it is new."""
    existed = conn.execute(
        "SELECT 1 FROM secrets WHERE app_id = ? AND name = ?", (app_id, name)
    ).fetchone()
    conn.execute(
        "INSERT INTO secrets (app_id, name, value, updated_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (app_id, name) DO UPDATE SET value = excluded.value,"
        " updated_at = excluded.updated_at",
        (app_id, name, value, now_ms()),
    )
    return existed is None


def delete_secret(conn: sqlite3.Connection, app_id: str, name: str) -> bool:
    cur = conn.execute("DELETE FROM secrets WHERE app_id = ? AND name = ?", (app_id, name))
    return cur.rowcount > 0
