"""`picloud restore`: verify an archive, migrate it forward, and install it as the state dir.

Everything is checked in a staging directory next to the state directory (same
file system, so the final step is one rename): the manifest's sha256s, SQLite's
`integrity_check`, and the schema version. Only then is an existing state
directory moved aside (with --force) and the staging directory renamed into place.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sqlite3
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from picloud.ops import archive
from picloud.ops.lock import is_locked
from picloud.store import migrate
from picloud.store.db import connect

__all__ = ["RESTORED_CONFIG", "RestoreError", "Restored", "restore"]

RESTORED_CONFIG = "picloud.toml.restored"
# picloud.auth.TOKEN_FILE, not imported: picloud.auth pulls in aiohttp (tests pin them equal).
TOKEN_FILE = "admin.token"


class RestoreError(Exception):
    """The restore was refused; the message is one line saying why and what to do."""


@dataclasses.dataclass(frozen=True, slots=True)
class Restored:
    state_dir: Path
    schema_from: int
    schema_to: int
    moved_aside: Path | None
    config: Path | None
    created_at: str


def restore(archive_path: Path, state_dir: Path, *, force: bool = False) -> Restored:
    """Install `archive_path` as `state_dir`; RestoreError (and nothing changed) on refusal."""
    state_dir = state_dir.absolute()
    if is_locked(state_dir):
        raise RestoreError(f"a PiCloud daemon is running on {state_dir}; stop it first")
    occupied = state_dir.exists() and any(state_dir.iterdir())
    if occupied and not force:
        raise RestoreError(
            f"{state_dir} is not empty; use --force to move it aside and restore over it"
        )
    if not archive_path.is_file():
        raise RestoreError(f"{archive_path}: no such file")
    state_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{state_dir.name}.restore-", dir=state_dir.parent))
    try:
        manifest = archive.extract_verified(archive_path, staging)
        schema_from, schema_to = _check_and_migrate(staging / archive.DATABASE, manifest["schema"])
        config = staging / archive.CONFIG
        if config.exists():
            config.rename(staging / RESTORED_CONFIG)
        moved = _install(staging, state_dir, occupied)
    except archive.ArchiveError as exc:
        raise RestoreError(str(exc)) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    restored_config = state_dir / RESTORED_CONFIG
    return Restored(
        state_dir,
        schema_from,
        schema_to,
        moved,
        restored_config if restored_config.exists() else None,
        str(manifest.get("created_at", "")),
    )


def _check_and_migrate(db_path: Path, manifest_schema: int) -> tuple[int, int]:
    """Integrity and schema checks, then the migrations the archive lacks."""
    latest = migrate.latest_version()
    try:
        conn = connect(db_path)
    except sqlite3.Error as exc:
        raise RestoreError(f"the archived database cannot be opened: {exc}") from exc
    try:
        result = conn.execute("PRAGMA integrity_check").fetchall()
        if [r[0] for r in result] != ["ok"]:
            raise RestoreError(f"the archived database is damaged: {result[0][0]}")
        version = migrate.current_version(conn)
        if version != manifest_schema:
            raise RestoreError(
                f"the manifest says schema {manifest_schema} but the database has {version}"
            )
        if version > latest:
            raise RestoreError(
                f"the archive has schema {version}, newer than this PiCloud knows ({latest}); "
                "upgrade PiCloud first"
            )
        upgraded = migrate.upgrade(conn)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return version, upgraded
    except sqlite3.Error as exc:
        raise RestoreError(f"the archived database cannot be read: {exc}") from exc
    finally:
        conn.close()


def _install(staging: Path, state_dir: Path, occupied: bool) -> Path | None:
    """Move the old state directory aside (or drop it when empty), then rename staging in."""
    moved: Path | None = None
    owner = _owner(state_dir)
    if occupied:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        moved = state_dir.with_name(f"{state_dir.name}.old-{stamp}")
        state_dir.rename(moved)
    elif state_dir.exists():
        state_dir.rmdir()
    os.chmod(staging, 0o700)
    if moved is not None and (moved / TOKEN_FILE).is_file():
        # The token is this machine's, never the archive's: clients keep working.
        shutil.copy2(moved / TOKEN_FILE, staging / TOKEN_FILE)
    staging.rename(state_dir)
    if owner is not None and os.geteuid() == 0:
        # Restored as root for a daemon that runs as its own user: hand the files over.
        for path in [state_dir, *state_dir.iterdir()]:
            os.chown(path, *owner)
    return moved


def _owner(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_uid, st.st_gid
