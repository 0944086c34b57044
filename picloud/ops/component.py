"""The ops component in the daemon: the `OPS` app key, its state and background tasks."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import shutil
from collections.abc import AsyncIterator

from aiohttp import web

from picloud.ops import backup, health, retention
from picloud.ops.kvstats import KV_STATS, KvStats
from picloud.ops.lock import StateLock
from picloud.ops.telemetry import Telemetry
from picloud.state import DB, RUNTIME, SETTINGS

__all__ = ["OPS", "Ops", "ops_ctx"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Ops:
    """What the ops routes read: the health probe, metrics state, backup and retention figures."""

    probe: health.Probe
    telemetry: Telemetry
    retention: retention.RetentionStats = dataclasses.field(
        default_factory=retention.RetentionStats
    )
    backups: backup.BackupStats = dataclasses.field(default_factory=backup.BackupStats)
    kv: KvStats = dataclasses.field(default_factory=KvStats)
    # One backup at a time: each holds a full copy of the database on disk while it runs.
    backup_lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)


OPS = web.AppKey("ops", Ops)


async def ops_ctx(app: web.Application) -> AsyncIterator[None]:
    """Take the state lock, start the probe and metrics, retention and scheduled backups."""
    settings, db = app[SETTINGS], app[DB]
    lock = StateLock(settings.state_dir)
    if not lock.acquire():
        log.warning("ops: another process holds %s; is a second daemon running?", lock.path)
    probe = health.Probe(settings.state_dir, settings.db_path, app[RUNTIME].started_at)
    probe.executor = _executor(app)
    await asyncio.to_thread(_prime, probe)
    ops = Ops(probe, Telemetry())
    await ops.telemetry.start(db)
    app[OPS] = ops
    app[KV_STATS] = ops.kv
    tasks = [
        asyncio.create_task(retention.run_forever(db, settings, ops.retention), name="retention")
    ]
    log.info(
        "ops: retention every %.0f s (invocations %d / %g days, versions %d); backups %s",
        retention.INTERVAL_S,
        settings.invocations_keep,
        settings.invocations_keep_days,
        settings.script_versions_keep,
        f"every {settings.backup_interval_h:g} h to {settings.backup_dir}, "
        f"keeping {settings.backup_keep}"
        if settings.backup_dir is not None
        else "not scheduled (backup_dir unset)",
    )
    if settings.backup_dir is not None:
        tasks.append(
            asyncio.create_task(
                backup.run_scheduled(settings, ops.backups, ops.backup_lock), name="backups"
            )
        )
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    lock.release()


def _prime(probe: health.Probe) -> None:
    health.prime_cpu()
    probe.take_baseline()
    # Work directories of backups cut short by a crash or a kill.
    for stale in probe.state_dir.glob(".backup-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _executor(app: web.Application) -> object | None:
    from picloud.executor import EXECUTOR

    return app[EXECUTOR] if EXECUTOR in app else None
