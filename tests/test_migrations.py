"""Migration replay: every schema version, from an empty file and from each older one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from picloud.store import migrate
from picloud.store.db import connect


def _schema(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    rows = conn.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
    ).fetchall()
    return [(t, n, " ".join((sql or "").split())) for t, n, sql in rows]


def _user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


@pytest.fixture
def latest_schema(tmp_path: Path) -> list[tuple[str, str, str]]:
    conn = connect(tmp_path / "reference.db")
    migrate.upgrade(conn)
    return _schema(conn)


def test_migrations_are_numbered_without_gaps() -> None:
    numbers = [n for n, _ in migrate.migrations()]
    assert numbers == list(range(1, len(numbers) + 1))
    assert migrate.latest_version() == len(numbers) >= 1


def test_empty_file_reaches_latest(tmp_path: Path) -> None:
    conn = connect(tmp_path / "empty.db")
    applied: list[int] = []
    assert migrate.upgrade(conn, on_migration=applied.append) == migrate.latest_version()
    assert applied == list(range(1, migrate.latest_version() + 1))
    assert _user_version(conn) == migrate.latest_version()
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.parametrize("start", range(1, migrate.latest_version() + 1))
def test_every_older_version_upgrades_to_the_same_schema(
    tmp_path: Path, start: int, latest_schema: list[tuple[str, str, str]]
) -> None:
    path = tmp_path / f"v{start}.db"
    conn = connect(path)
    assert migrate.upgrade(conn, target=start) == start
    assert migrate.current_version(conn) == start
    conn.close()
    # A later daemon opens the old file anew.
    conn = connect(path)
    applied: list[int] = []
    assert migrate.upgrade(conn, on_migration=applied.append) == migrate.latest_version()
    assert applied == list(range(start + 1, migrate.latest_version() + 1))
    assert _schema(conn) == latest_schema
    assert _user_version(conn) == migrate.latest_version()


def test_a_new_file_gets_incremental_auto_vacuum(tmp_path: Path) -> None:
    """Only set before the file's header is written (so before WAL) does it take effect."""
    conn = connect(tmp_path / "vacuum.db")
    migrate.upgrade(conn)
    assert conn.execute("PRAGMA auto_vacuum").fetchone() == (2,)  # 2 = INCREMENTAL
    conn.close()
    conn = connect(tmp_path / "vacuum.db")
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("PRAGMA auto_vacuum").fetchone() == (2,)


def test_second_run_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "twice.db"
    conn = connect(path)
    migrate.upgrade(conn)
    conn.execute("INSERT INTO apps (id, created_at) VALUES ('home', 1)")
    before = _schema(conn)
    changes = conn.total_changes
    applied: list[int] = []
    assert migrate.upgrade(conn, on_migration=applied.append) == migrate.latest_version()
    assert applied == []
    assert _schema(conn) == before
    assert conn.total_changes == changes
    assert conn.execute("SELECT id FROM apps").fetchall() == [("home",)]


def test_upgrade_keeps_data_written_at_an_older_version(tmp_path: Path) -> None:
    conn = connect(tmp_path / "data.db")
    migrate.upgrade(conn, target=1)
    conn.execute("INSERT INTO apps (id, created_at) VALUES ('home', 1)")
    migrate.upgrade(conn)
    assert conn.execute("SELECT id, created_at FROM apps").fetchall() == [("home", 1)]


def test_newer_than_known_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    conn = connect(path)
    migrate.upgrade(conn)
    conn.execute(f"PRAGMA user_version={migrate.latest_version() + 1}")
    before = _schema(conn)
    with pytest.raises(sqlite3.DatabaseError, match="newer"):
        migrate.upgrade(conn)
    assert migrate.current_version(conn) == migrate.latest_version() + 1
    assert _schema(conn) == before


def test_a_failing_migration_leaves_the_last_complete_version(tmp_path: Path) -> None:
    """A half-applied migration rolls back whole (statements and the version bump)."""
    conn = connect(tmp_path / "half.db")
    migrate.upgrade(conn, target=1)
    conn.execute("CREATE TABLE kv (x INTEGER)")  # makes migration 2 fail part-way
    with pytest.raises(sqlite3.OperationalError):
        migrate.upgrade(conn)
    assert migrate.current_version(conn) == 1
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'kv_usage'").fetchone() is None
