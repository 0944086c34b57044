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

__all__ = ["RESTORED_CONFIG", "RestoreError", "Restored", "restore", "verify"]

RESTORED_CONFIG = "picloud.toml.restored"
_LOST_FOUND = "lost+found"  # ext4 puts it at the root of every file system
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
    # A mount point (a USB SSD at /var/lib/picloud) cannot be renamed, and a sibling
    # staging dir would be on another file system: work inside it instead.
    mounted = state_dir.is_dir() and os.path.ismount(state_dir)
    occupied = state_dir.exists() and any(p.name != _LOST_FOUND for p in state_dir.iterdir())
    if occupied and not force:
        raise RestoreError(
            f"{state_dir} is not empty; use --force to move it aside and restore over it"
        )
    if not archive_path.is_file():
        raise RestoreError(f"{archive_path}: no such file")
    state_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(prefix=".restore-", dir=state_dir)
        if mounted
        else tempfile.mkdtemp(prefix=f".{state_dir.name}.restore-", dir=state_dir.parent)
    )
    try:
        manifest = archive.extract_verified(archive_path, staging)
        schema_from, schema_to = _check_and_migrate(staging / archive.DATABASE, manifest["schema"])
        config = staging / archive.CONFIG
        if config.exists():
            config.rename(staging / RESTORED_CONFIG)
        owner = _owner(state_dir)
        if mounted:
            moved = _install_contents(staging, state_dir, occupied)
        else:
            moved = _install(staging, state_dir, occupied)
        _hand_over(state_dir, owner)
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


def verify(archive_path: Path) -> Restored:
    """Every check of `restore`, on a temporary copy: is this archive restorable here?"""
    if not archive_path.is_file():
        raise RestoreError(f"{archive_path}: no such file")
    with tempfile.TemporaryDirectory(prefix="picloud-verify-") as tmp:
        try:
            manifest = archive.extract_verified(archive_path, Path(tmp))
        except archive.ArchiveError as exc:
            raise RestoreError(str(exc)) from exc
        schema_from, schema_to = _check_and_migrate(
            Path(tmp) / archive.DATABASE, manifest["schema"]
        )
    return Restored(
        Path(tmp), schema_from, schema_to, None, None, str(manifest.get("created_at", ""))
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
    if occupied:
        moved = state_dir.with_name(f"{state_dir.name}.old-{_stamp()}")
        state_dir.rename(moved)
    elif state_dir.exists():
        state_dir.rmdir()
    os.chmod(staging, 0o700)
    _keep_token(moved, staging)
    staging.rename(state_dir)
    return moved


def _install_contents(staging: Path, state_dir: Path, occupied: bool) -> Path | None:
    """The same for a state directory that is a mount point: move entries, not the directory."""
    moved: Path | None = None
    if occupied:
        moved = state_dir / f".old-{_stamp()}"
        moved.mkdir(mode=0o700)
        for entry in list(state_dir.iterdir()):
            if entry not in (staging, moved) and entry.name != _LOST_FOUND:
                entry.rename(moved / entry.name)
    _keep_token(moved, staging)
    for entry in list(staging.iterdir()):
        entry.rename(state_dir / entry.name)
    staging.rmdir()
    return moved


def _keep_token(moved: Path | None, staging: Path) -> None:
    """The token is this machine's, never the archive's: keep it so clients keep working."""
    if moved is not None and (moved / TOKEN_FILE).is_file():
        shutil.copy2(moved / TOKEN_FILE, staging / TOKEN_FILE)


def _hand_over(state_dir: Path, owner: tuple[int, int] | None) -> None:
    """Restored as root for a daemon that runs as its own user: give the files back."""
    if owner is None or os.geteuid() != 0:
        return
    for path in [state_dir, *state_dir.iterdir()]:
        if not path.name.startswith(".old-"):
            os.chown(path, *owner)


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _owner(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_uid, st.st_gid
