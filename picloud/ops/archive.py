"""The backup archive: a tar.gz of an SQLite online-backup snapshot, the config, a manifest.

Members, in this order: `manifest.json` (format, product and schema versions,
created_at, sha256 and size of every other member), `picloud.db` (a standalone
rollback-journal file made with the SQLite backup API, so a live WAL is never
copied), and `picloud.toml` when a config file exists (with any admin_token
line removed: the admin token never goes into an archive).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tarfile

# tarfile (and the product version, read through importlib.metadata) load when an archive
# is made or read: the daemon imports this module at start-up and may never make one.

__all__ = [
    "CONFIG",
    "DATABASE",
    "FORMAT",
    "MANIFEST",
    "ArchiveError",
    "create",
    "extract_verified",
    "snapshot_database",
]

FORMAT = 1
MANIFEST = "manifest.json"
DATABASE = "picloud.db"
CONFIG = "picloud.toml"
_MEMBERS = {MANIFEST, DATABASE, CONFIG}
_CHUNK = 1 << 20
_MAX_MANIFEST = 1 << 20
_ADMIN_TOKEN_LINE = re.compile(r"^\s*admin_token\s*=.*$", re.MULTILINE)


class ArchiveError(Exception):
    """The archive cannot be made or is not a valid PiCloud backup; the message says why."""


def snapshot_database(source: Path, dest: Path) -> int:
    """Copy the live database to `dest` with SQLite's online backup; returns its schema.

    One backup step copies every page inside one read transaction, so the copy is
    a consistent point in time even while the daemon keeps writing (WAL readers do
    not block the writer). The copy is switched to a rollback journal so it is one
    self-contained file.
    """
    if not source.is_file():  # sqlite3.connect would create an empty database
        raise ArchiveError(f"no database at {source}")
    src = _open_source(source)
    try:
        dst = sqlite3.connect(dest, isolation_level=None)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
            check = dst.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise ArchiveError(f"the database snapshot fails its check: {check}")
            return int(dst.execute("PRAGMA user_version").fetchone()[0])
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise ArchiveError(f"cannot snapshot {source}: {exc}") from exc
    finally:
        src.close()


def _open_source(source: Path) -> sqlite3.Connection:
    """Read-only where possible; a normal connection when a crash left a WAL to recover."""
    conn = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=10.0)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:
        conn.close()
        try:
            return sqlite3.connect(source, timeout=10.0)
        except sqlite3.Error as exc:
            raise ArchiveError(f"cannot open {source}: {exc}") from exc


def create(db_path: Path, out: Path, config: Path | None = None) -> dict[str, Any]:
    """Write one archive to `out` (0600, atomically via a temporary name); returns the manifest."""
    from picloud.versions import product_version

    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".picloud-backup-", dir=out.parent))
    try:
        schema = snapshot_database(db_path, work / DATABASE)
        members = [DATABASE]
        if config is not None and config.is_file():
            text = _ADMIN_TOKEN_LINE.sub(
                "# admin_token removed by picloud backup", config.read_text()
            )
            (work / CONFIG).write_text(text)
            members.append(CONFIG)
        manifest = {
            "format": FORMAT,
            "product": product_version(),
            "schema": schema,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "files": {name: _digest(work / name) for name in members},
        }
        partial = work / "archive.partial"
        _write_tar(partial, manifest, [(name, work / name) for name in members])
        os.replace(partial, out)
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _digest(path: Path) -> dict[str, Any]:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return {"sha256": h.hexdigest(), "size": path.stat().st_size}


def _write_tar(path: Path, manifest: dict[str, Any], files: list[tuple[str, Path]]) -> None:
    import tarfile

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as raw:
        with tarfile.open(fileobj=raw, mode="w:gz", compresslevel=6) as tar:
            data = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
            tar.addfile(info, io.BytesIO(data))
            for name, member in files:
                info = tar.gettarinfo(str(member), arcname=name)
                info.mode, info.uid, info.gid, info.uname, info.gname = 0o600, 0, 0, "", ""
                with member.open("rb") as fh:
                    tar.addfile(info, fh)
        raw.flush()
        os.fsync(raw.fileno())


def extract_verified(archive: Path, dest: Path) -> dict[str, Any]:
    """Unpack `archive` into the directory `dest`, checking every member against the manifest.

    The manifest comes first, so each member's size is checked before a byte of it is
    written: a damaged or hostile archive cannot fill the disk.
    """
    import tarfile

    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            manifest, found = _extract(tar, dest)
    except (OSError, EOFError, tarfile.TarError) as exc:
        raise ArchiveError(f"{archive} is not a readable PiCloud backup: {exc}") from exc
    if manifest is None:
        raise ArchiveError(f"{archive} is empty: not a PiCloud backup")
    listed = set(manifest["files"])
    if DATABASE not in listed or listed != found:
        raise ArchiveError(f"{archive}: members {sorted(found)} do not match the manifest")
    for name, want in manifest["files"].items():
        if _digest(dest / name)["sha256"] != want.get("sha256"):
            raise ArchiveError(f"{archive}: {name} is corrupt (its sha256 does not match)")
    return manifest


def _extract(tar: tarfile.TarFile, dest: Path) -> tuple[dict[str, Any] | None, set[str]]:
    manifest: dict[str, Any] | None = None
    found: set[str] = set()
    for info in tar:
        # Only our own flat members, as regular files: no paths, links or devices.
        if info.name not in _MEMBERS or not info.isfile() or info.name in found:
            raise ArchiveError(f"unexpected member {info.name!r:.80}: not a PiCloud backup")
        source = tar.extractfile(info)
        if source is None:
            raise ArchiveError(f"cannot read member {info.name}")
        if manifest is None:
            if info.name != MANIFEST or info.size > _MAX_MANIFEST:
                raise ArchiveError(f"{MANIFEST} must come first: not a PiCloud backup")
            manifest = _manifest(source.read())
            continue
        want = manifest["files"].get(info.name)
        if not isinstance(want, dict) or want.get("size") != info.size:
            raise ArchiveError(f"{info.name} does not match the manifest")
        fd = os.open(dest / info.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(source, out, _CHUNK)
        found.add(info.name)
    return manifest, found


def _manifest(raw: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise ArchiveError(f"the manifest is not JSON: {exc}") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ArchiveError("the manifest is malformed")
    if manifest.get("format") != FORMAT:
        raise ArchiveError(
            f"archive format {manifest.get('format')!r} is not one this PiCloud reads ({FORMAT})"
        )
    if not isinstance(manifest.get("schema"), int):
        raise ArchiveError("the manifest has no schema version")
    return manifest
