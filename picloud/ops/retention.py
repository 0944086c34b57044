"""Retention: prune old records in small batches and give the space back, periodically.

Every delete is at most `BATCH` rows in its own short write transaction, so a
prune never holds the writer long enough to stall an invocation or a KV write;
the space comes back with `PRAGMA incremental_vacuum` in small steps too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import sqlite3
import time
from collections.abc import Callable

from picloud.config import Settings
from picloud.store import Database
from picloud.store import retention as sql

__all__ = ["BATCH", "INTERVAL_S", "RetentionStats", "run_forever", "run_once"]

log = logging.getLogger(__name__)

BATCH = 500
INTERVAL_S = 600.0
_FIRST_RUN_DELAY_S = 30.0
_VACUUM_STEP_PAGES = 256
# Free pages left in the file for SQLite to reuse: giving every page back only to grow the
# file again costs SD-card writes.
_VACUUM_SLACK_PAGES = 256
_MAX_VACUUM_STEPS = 4096
_DAY_MS = 86_400_000
_HOUR_MS = 3_600_000


@dataclasses.dataclass
class RetentionStats:
    """Totals since start (exported by /metrics) and the last run (on /admin/system)."""

    runs: int = 0
    last_run_at: float | None = None
    last_duration_s: float | None = None
    pruned: dict[str, int] = dataclasses.field(
        default_factory=lambda: {"invocations": 0, "events": 0, "script_versions": 0}
    )
    vacuumed_pages: int = 0

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


async def run_once(
    db: Database, settings: Settings, stats: RetentionStats | None = None, now_ms: int | None = None
) -> dict[str, int]:
    """One retention pass; returns what it removed (rows per table, pages vacuumed)."""
    stats = stats if stats is not None else RetentionStats()
    started = time.monotonic()
    now = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    age_cutoff = now - int(settings.invocations_keep_days * _DAY_MS)
    done = {
        "invocations": await _drain(
            db, lambda c: sql.prune_invocations_before(c, age_cutoff, BATCH)
        )
    }
    count_cutoff = await db.read(
        lambda c: sql.invocation_count_cutoff(c, settings.invocations_keep)
    )
    if count_cutoff is not None:
        done["invocations"] += await _drain(
            db, lambda c: sql.prune_invocations_before(c, count_cutoff, BATCH)
        )
    events_cutoff = now - int(settings.delivered_events_keep_h * _HOUR_MS)
    done["events"] = await _drain(db, lambda c: sql.prune_delivered_events(c, events_cutoff, BATCH))
    keep = settings.script_versions_keep
    done["script_versions"] = await _drain(db, lambda c: sql.prune_script_versions(c, keep, BATCH))
    done["vacuumed_pages"] = await vacuum(db)
    for table in ("invocations", "events", "script_versions"):
        stats.pruned[table] += done[table]
    stats.vacuumed_pages += done["vacuumed_pages"]
    stats.runs += 1
    stats.last_run_at = time.time()
    stats.last_duration_s = round(time.monotonic() - started, 3)
    return done


async def _drain(db: Database, step: Callable[[sqlite3.Connection], int]) -> int:
    """Run a batched delete until a batch comes back short; each batch is its own write."""
    total = 0
    while True:
        removed = await db.write(step, routine=True, bulk=True)
        total += removed
        if removed < BATCH:
            return total
        await asyncio.sleep(0)  # let queued invocations and KV writes in between batches


async def vacuum(db: Database) -> int:
    """Give free pages beyond a small slack back to the file system, a few at a time."""
    stats = await db.read(sql.page_stats)
    if stats.auto_vacuum != 2:  # a file made before auto_vacuum=INCREMENTAL was set
        return 0
    freed, free = 0, stats.freelist_count
    for _ in range(_MAX_VACUUM_STEPS):
        if free <= _VACUUM_SLACK_PAGES:
            break
        step = min(_VACUUM_STEP_PAGES, free - _VACUUM_SLACK_PAGES)
        left = await db.write(
            functools.partial(sql.incremental_vacuum, pages=step), routine=True, bulk=True
        )
        freed += free - left
        if left >= free:  # nothing moved: do not spin
            break
        free = left
        await asyncio.sleep(0)
    return freed


async def run_forever(db: Database, settings: Settings, stats: RetentionStats) -> None:
    """The background task: a pass shortly after start, then every INTERVAL_S."""
    await asyncio.sleep(_FIRST_RUN_DELAY_S)
    while True:
        try:
            done = await run_once(db, settings, stats)
        except (sqlite3.Error, OSError) as exc:
            log.warning("retention: pass failed: %s", exc)
        except Exception:  # the loop must survive a bug in one pass
            log.exception("retention: pass failed")
        else:
            if any(done.values()):
                log.info("retention: %s", ", ".join(f"{k}={v}" for k, v in done.items() if v))
        await asyncio.sleep(INTERVAL_S)
