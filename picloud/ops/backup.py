"""Backups: one archive on demand (HTTP, CLI) and scheduled ones in `backup_dir` with rotation."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from picloud.config import DEFAULT_CONFIG_FILE, Settings
from picloud.ops import archive

__all__ = [
    "BackupStats",
    "archive_name",
    "config_file",
    "make_backup",
    "rotate",
    "run_scheduled",
    "scheduled_backups",
]

log = logging.getLogger(__name__)

PREFIX = "picloud-"
SUFFIX = ".tar.gz"
_RETRY_S = 300.0


@dataclasses.dataclass
class BackupStats:
    """The last backup made by this daemon (for /admin/system and /metrics)."""

    last_success_at: float | None = None
    last_size_bytes: int | None = None
    last_duration_s: float | None = None
    last_path: str | None = None
    last_error: str | None = None
    failures: int = 0
    successes: int = 0

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def config_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """The config file the settings were read from, if there is one."""
    env = os.environ if environ is None else environ
    path = Path(env.get("PICLOUD_CONFIG", DEFAULT_CONFIG_FILE))
    return path if path.is_file() else None


def archive_name(at: datetime | None = None) -> str:
    at = at or datetime.now(UTC)
    return f"{PREFIX}{at.strftime('%Y%m%dT%H%M%S')}{at.microsecond // 1000:03d}Z{SUFFIX}"


def make_backup(settings: Settings, out: Path, stats: BackupStats | None = None) -> dict[str, Any]:
    """Write one archive of the live (or stopped) state to `out`; blocking, run it in a thread."""
    started = time.monotonic()
    try:
        manifest = archive.create(settings.db_path, out, config_file())
    except (archive.ArchiveError, OSError) as exc:
        if stats is not None:
            stats.failures += 1
            stats.last_error = str(exc)
        raise
    if stats is not None:
        stats.successes += 1
        stats.last_success_at = time.time()
        stats.last_size_bytes = out.stat().st_size
        stats.last_duration_s = round(time.monotonic() - started, 3)
        stats.last_path = str(out)
        stats.last_error = None
    return manifest


def _backup_and_rotate(settings: Settings, out: Path, stats: BackupStats) -> list[Path]:
    """One scheduled step; the stats count it only once the rotation is done too."""
    assert settings.backup_dir is not None
    own = BackupStats()
    try:
        make_backup(settings, out, own)
        removed = rotate(settings.backup_dir, settings.backup_keep)
    finally:
        stats.successes += own.successes
        stats.failures += own.failures
        stats.last_error = own.last_error
        if own.successes:
            stats.last_success_at = own.last_success_at
            stats.last_size_bytes = own.last_size_bytes
            stats.last_duration_s = own.last_duration_s
            stats.last_path = own.last_path
    return removed


def scheduled_backups(backup_dir: Path) -> list[Path]:
    """Archives made by the schedule, oldest first (the names sort by time)."""
    if not backup_dir.is_dir():
        return []
    return sorted(
        p for p in backup_dir.iterdir() if p.name.startswith(PREFIX) and p.name.endswith(SUFFIX)
    )


def rotate(backup_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` scheduled archives; returns the deleted ones."""
    old = scheduled_backups(backup_dir)[: -max(keep, 1)]
    for path in old:
        path.unlink(missing_ok=True)
    return old


def _seconds_until_due(backup_dir: Path, interval_s: float) -> float:
    """Due `interval_s` after the newest archive, so restarts neither skip nor repeat one."""
    archives = scheduled_backups(backup_dir)
    if not archives:
        return 0.0
    age = time.time() - archives[-1].stat().st_mtime
    return max(0.0, interval_s - age)


async def run_scheduled(settings: Settings, stats: BackupStats, lock: asyncio.Lock) -> None:
    """The background task: every backup_interval_h into backup_dir, keeping backup_keep."""
    assert settings.backup_dir is not None
    backup_dir = settings.backup_dir
    interval = max(settings.backup_interval_h * 3600.0, 1.0)
    while True:
        await asyncio.sleep(_seconds_until_due(backup_dir, interval))
        out = backup_dir / archive_name()
        try:
            async with lock:
                removed = await asyncio.to_thread(_backup_and_rotate, settings, out, stats)
        except (archive.ArchiveError, OSError) as exc:
            log.error("backup: scheduled backup to %s failed: %s", backup_dir, exc)
            await asyncio.sleep(min(_RETRY_S, interval))
            continue
        log.info("backup: wrote %s (%d old removed)", out, len(removed))
