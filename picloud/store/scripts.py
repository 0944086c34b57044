"""Scripts and their version history: every SQL statement over those tables."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from dataclasses import dataclass

__all__ = [
    "RunnableScript",
    "Script",
    "ScriptSettings",
    "Version",
    "add_version",
    "create_script",
    "delete_script",
    "get_script",
    "get_version",
    "list_scripts",
    "list_versions",
    "load_runnable",
    "prune_versions",
    "rollback",
    "update_settings",
]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _sha256(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class RunnableScript:
    """What the executor needs to run a script: its current version's source and limits."""

    app_id: str
    script_id: str
    version: int
    source: str
    public: bool
    timeout_ms: int
    memory_mb: int
    isolation: str
    # Of the source: a cache key that stays right when a script is deleted and re-created.
    sha256: str = ""


@dataclass(frozen=True, slots=True)
class ScriptSettings:
    public: bool
    timeout_ms: int
    memory_mb: int
    isolation: str


@dataclass(frozen=True, slots=True)
class Script:
    id: str
    app_id: str
    version: int
    public: bool
    timeout_ms: int
    memory_mb: int
    isolation: str
    created_at: int
    updated_at: int
    sha256: str
    source: str | None = None


@dataclass(frozen=True, slots=True)
class Version:
    script_id: str
    version: int
    sha256: str
    created_at: int
    rollback_of: int | None
    source: str | None = None


_SCRIPT_COLS = (
    "s.id, s.app_id, s.version, s.public, s.timeout_ms, s.memory_mb, s.isolation,"
    " s.created_at, s.updated_at, v.sha256"
)
_SCRIPT_FROM = (
    " FROM scripts s JOIN script_versions v ON v.script_id = s.id AND v.version = s.version"
)


def _script(row: tuple[object, ...]) -> Script:
    sid, app_id, version, public, timeout_ms, memory_mb, isolation, created, updated, sha = row[:10]
    return Script(
        id=str(sid),
        app_id=str(app_id),
        version=int(str(version)),
        public=bool(public),
        timeout_ms=int(str(timeout_ms)),
        memory_mb=int(str(memory_mb)),
        isolation=str(isolation),
        created_at=int(str(created)),
        updated_at=int(str(updated)),
        sha256=str(sha),
        source=str(row[10]) if len(row) > 10 else None,
    )


def load_runnable(conn: sqlite3.Connection, script_id: str) -> RunnableScript | None:
    """The script's current version and limits, or None when there is no such script."""
    row = conn.execute(
        "SELECT s.app_id, s.id, s.version, v.source, s.public, s.timeout_ms, s.memory_mb,"
        f" s.isolation, v.sha256{_SCRIPT_FROM} WHERE s.id = ?",
        (script_id,),
    ).fetchone()
    if row is None:
        return None
    app_id, sid, version, source, public, timeout_ms, memory_mb, isolation, sha = row
    return RunnableScript(
        app_id, sid, version, source, bool(public), timeout_ms, memory_mb, isolation, sha
    )


def create_script(
    conn: sqlite3.Connection, script_id: str, app_id: str, source: str, cfg: ScriptSettings
) -> Script | None:
    """The new script at version 1, or None when the id is taken."""
    now = _now_ms()
    cur = conn.execute(
        "INSERT INTO scripts (id, app_id, version, public, timeout_ms, memory_mb, isolation,"
        " created_at, updated_at) VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (id) DO NOTHING",
        (
            script_id,
            app_id,
            int(cfg.public),
            cfg.timeout_ms,
            cfg.memory_mb,
            cfg.isolation,
            now,
            now,
        ),
    )
    if not cur.rowcount:
        return None
    _insert_version(conn, script_id, 1, source, now, None)
    return get_script(conn, script_id, with_source=True)


def _insert_version(
    conn: sqlite3.Connection,
    script_id: str,
    version: int,
    source: str,
    now: int,
    rollback_of: int | None,
) -> None:
    conn.execute(
        "INSERT INTO script_versions (script_id, version, source, sha256, created_at,"
        " rollback_of) VALUES (?, ?, ?, ?, ?, ?)",
        (script_id, version, source, _sha256(source), now, rollback_of),
    )


def get_script(
    conn: sqlite3.Connection, script_id: str, *, with_source: bool = False
) -> Script | None:
    cols = _SCRIPT_COLS + (", v.source" if with_source else "")
    row = conn.execute(f"SELECT {cols}{_SCRIPT_FROM} WHERE s.id = ?", (script_id,)).fetchone()
    return _script(row) if row else None


def list_scripts(
    conn: sqlite3.Connection, app_id: str | None, after: str | None, limit: int
) -> list[Script]:
    """Scripts in id order after `after` (of one app when `app_id` is given)."""
    where = "s.id > ?" + (" AND s.app_id = ?" if app_id is not None else "")
    params: tuple[object, ...] = (after or "",) + ((app_id,) if app_id is not None else ())
    rows = conn.execute(
        f"SELECT {_SCRIPT_COLS}{_SCRIPT_FROM} WHERE {where} ORDER BY s.id LIMIT ?",
        (*params, limit),
    ).fetchall()
    return [_script(r) for r in rows]


def add_version(
    conn: sqlite3.Connection, script_id: str, source: str, rollback_of: int | None = None
) -> int | None:
    """Makes `source` the script's new current version; its number, or None if no script."""
    row = conn.execute("SELECT version FROM scripts WHERE id = ?", (script_id,)).fetchone()
    if row is None:
        return None
    version = int(row[0]) + 1
    now = _now_ms()
    _insert_version(conn, script_id, version, source, now, rollback_of)
    conn.execute(
        "UPDATE scripts SET version = ?, updated_at = ? WHERE id = ?", (version, now, script_id)
    )
    return version


def update_settings(conn: sqlite3.Connection, script_id: str, cfg: ScriptSettings) -> bool:
    cur = conn.execute(
        "UPDATE scripts SET public = ?, timeout_ms = ?, memory_mb = ?, isolation = ?,"
        " updated_at = ? WHERE id = ?",
        (int(cfg.public), cfg.timeout_ms, cfg.memory_mb, cfg.isolation, _now_ms(), script_id),
    )
    return cur.rowcount > 0


def delete_script(conn: sqlite3.Connection, script_id: str) -> bool:
    """Deletes the script and its invocation records; versions and triggers cascade."""
    if not conn.execute("DELETE FROM scripts WHERE id = ?", (script_id,)).rowcount:
        return False
    conn.execute("DELETE FROM invocations WHERE script_id = ?", (script_id,))
    return True


def list_versions(
    conn: sqlite3.Connection, script_id: str, after: int | None, limit: int
) -> list[Version]:
    """Versions oldest first, those above `after` when given."""
    rows = conn.execute(
        "SELECT script_id, version, sha256, created_at, rollback_of FROM script_versions"
        " WHERE script_id = ? AND version > ? ORDER BY version LIMIT ?",
        (script_id, after or 0, limit),
    ).fetchall()
    return [Version(*r) for r in rows]


def prune_versions(conn: sqlite3.Connection, script_id: str, keep: int) -> int:
    """Deletes all but the newest `keep` versions (never the current one); how many went."""
    cur = conn.execute(
        "DELETE FROM script_versions WHERE script_id = ? AND version <= "
        "(SELECT version FROM scripts WHERE id = ?) - ?",
        (script_id, script_id, max(keep, 1)),
    )
    return cur.rowcount


def get_version(conn: sqlite3.Connection, script_id: str, version: int) -> Version | None:
    row = conn.execute(
        "SELECT script_id, version, sha256, created_at, rollback_of, source FROM script_versions"
        " WHERE script_id = ? AND version = ?",
        (script_id, version),
    ).fetchone()
    return Version(*row) if row else None


def rollback(conn: sqlite3.Connection, script_id: str, version: int) -> int | None:
    """A new version with `version`'s source; its number, or None if either is unknown."""
    old = get_version(conn, script_id, version)
    if old is None or old.source is None:
        return None
    return add_version(conn, script_id, old.source, rollback_of=version)
