"""Numbered SQL migrations shipped in the package; `PRAGMA user_version` is the schema."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from importlib import resources

__all__ = ["current_version", "latest_version", "migrations", "upgrade"]

_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")


def migrations() -> list[tuple[int, str]]:
    """(number, SQL) of every shipped migration, in order; numbers are 1, 2, 3, ..."""
    found = []
    for entry in resources.files("picloud.store.migrations").iterdir():
        match = _NAME.fullmatch(entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text()))
    found.sort()
    if [n for n, _ in found] != list(range(1, len(found) + 1)):
        raise RuntimeError("migrations must be numbered 0001, 0002, ... without gaps")
    return found


def latest_version() -> int:
    return len(migrations())


def current_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def upgrade(
    conn: sqlite3.Connection,
    on_migration: Callable[[int], None] | None = None,
    target: int | None = None,
) -> int:
    """Apply every migration above the file's version (up to `target`); returns the version.

    Each migration and its `user_version` bump commit together, so a crash
    mid-upgrade leaves the file at the last complete version.
    """
    version = current_version(conn)
    steps = migrations()
    if version > len(steps):
        raise sqlite3.DatabaseError(
            f"the database has schema {version}, newer than this PiCloud knows ({len(steps)})"
        )
    if version == 0:
        # Must precede the first table: lets retention give pages back without a full VACUUM.
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    for number, sql in steps:
        if number <= version or (target is not None and number > target):
            continue
        if on_migration is not None:
            on_migration(number)
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        version = number
    return version


def _statements(sql: str) -> list[str]:
    """Split a migration into statements (executescript would commit on its own)."""
    out, buf = [], ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return [s for s in out if s and not all(ln.strip().startswith("--") for ln in s.splitlines())]
