"""`picloud backup|restore`: archives of the state directory, live or stopped."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from picloud.config import load_settings
from picloud.ops import archive
from picloud.ops.backup import make_backup
from picloud.ops.restore import RestoreError, restore, verify

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the backup and restore commands."""
    backup = sub.add_parser(
        "backup",
        help="write a backup archive of the state directory (works while the daemon runs)",
    )
    backup.add_argument("file", type=Path, help="the archive to write (.tar.gz)")
    backup.set_defaults(func=_backup)
    rest = sub.add_parser(
        "restore", help="restore a backup archive into the (empty) state directory"
    )
    rest.add_argument("file", type=Path, help="the archive to read")
    rest.add_argument(
        "--force",
        action="store_true",
        help="restore over a non-empty state directory, moving it aside to <state>.old-<time>",
    )
    rest.add_argument(
        "--check",
        action="store_true",
        help="only verify the archive (sha256s, integrity, schema); change nothing",
    )
    rest.set_defaults(func=_restore)


def _say(line: str, *, err: bool = False) -> None:
    (sys.stderr if err else sys.stdout).write(line + "\n")


def _backup(args: argparse.Namespace) -> int:
    settings = load_settings()
    out: Path = args.file
    if out.is_dir():
        _say(f"picloud: {out} is a directory; give a file name", err=True)
        return 2
    try:
        manifest = make_backup(settings, out)
    except (archive.ArchiveError, OSError) as exc:
        _say(f"picloud: backup failed: {exc}", err=True)
        return 1
    size = out.stat().st_size
    _say(f"wrote {out} ({size} bytes, schema {manifest['schema']}, {manifest['created_at']})")
    return 0


def _restore(args: argparse.Namespace) -> int:
    if args.check:
        return _check(args.file)
    settings = load_settings()
    try:
        done = restore(args.file, settings.state_dir, force=args.force)
    except RestoreError as exc:
        _say(f"picloud: restore refused: {exc}", err=True)
        return 1
    except OSError as exc:
        _say(f"picloud: restore failed: {exc}", err=True)
        return 1
    migrated = (
        f", migrated from schema {done.schema_from} to {done.schema_to}"
        if done.schema_from != done.schema_to
        else ""
    )
    _say(f"restored the backup of {done.created_at} into {done.state_dir}{migrated}")
    if done.moved_aside is not None:
        _say(f"the previous state directory is now {done.moved_aside}")
    if done.config is not None:
        _say(f"the archived config file is at {done.config}; copy it to use it")
    if done.moved_aside is None:
        _say("a new admin token is made on first start unless PICLOUD_ADMIN_TOKEN is set")
    return 0


def _check(file: Path) -> int:
    try:
        done = verify(file)
    except RestoreError as exc:
        _say(f"picloud: {file} cannot be restored: {exc}", err=True)
        return 1
    except OSError as exc:
        _say(f"picloud: check failed: {exc}", err=True)
        return 1
    upgrade = (
        f"; restoring migrates it to schema {done.schema_to}"
        if done.schema_from != done.schema_to
        else ""
    )
    _say(f"ok: {file} ({done.created_at}, schema {done.schema_from}){upgrade}")
    return 0
