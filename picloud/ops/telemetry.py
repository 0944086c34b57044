"""The daemon-long invocation counters behind /metrics, fed by tailing the invocations table.

prometheus_client (and the wsgiref, socketserver, http.server it pulls in, ~1 MiB
resident) loads on the first scrape, not at start-up: a board nobody scrapes never
pays for it. Counting still starts with the daemon: `start()` notes the newest
invocation then, and the first scrape counts everything recorded since.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from typing import TYPE_CHECKING

from picloud.store import Database
from picloud.store import retention as sql

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["LATENCY_BUCKETS_S", "Telemetry"]

# Script latency on a Pi: from a warm 2 ms run to the 60 s cap.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_TAIL_BATCH = 5000


@dataclasses.dataclass(frozen=True, slots=True)
class _Series:
    registry: CollectorRegistry
    invocations: Counter
    latency: Histogram


def _build() -> _Series:
    from prometheus_client import (
        CollectorRegistry,
        Counter,
        Histogram,
        ProcessCollector,
        disable_created_metrics,
    )

    # No `*_created` series: one more per label set, which nothing here needs.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    reg = CollectorRegistry(auto_describe=True)
    invocations = Counter(
        "picloud_invocations",
        "Invocations recorded, by script, status and what started them.",
        ["script", "status", "trigger"],
        registry=reg,
    )
    latency = Histogram(
        "picloud_invocation_duration_seconds",
        "Wall-clock duration of invocations, by script.",
        ["script"],
        buckets=LATENCY_BUCKETS_S,
        registry=reg,
    )
    ProcessCollector(namespace="picloud", registry=reg)
    return _Series(reg, invocations, latency)


class Telemetry:
    """The counters that live as long as the daemon, in their own registry."""

    def __init__(self) -> None:
        self._series: _Series | None = None
        self._rowid = 0
        self._lock: asyncio.Lock | None = None

    @property
    def series(self) -> _Series:
        """The registry and its counters, built (importing prometheus_client) on first use."""
        if self._series is None:
            self._series = _build()
        return self._series

    @property
    def registry(self) -> CollectorRegistry:
        return self.series.registry

    async def start(self, db: Database) -> None:
        """Count from now on: counters start at zero with the daemon, as Prometheus expects."""
        self._lock = asyncio.Lock()
        self._rowid = await db.read(sql.max_invocation_rowid)

    async def catch_up(self, db: Database) -> None:
        """Count the invocations recorded since the last scrape.

        Rows are read and counted on a reader thread (prometheus_client's metrics are
        thread-safe), so a scrape after a burst of thousands never blocks the loop.
        """
        assert self._lock is not None, "start() first"
        series = self.series  # built here, on the loop, before any thread counts
        async with self._lock:
            while await db.read(lambda conn: self._consume(conn, series)) == _TAIL_BATCH:
                pass

    def _consume(self, conn: sqlite3.Connection, series: _Series) -> int:
        rows = sql.invocations_after(conn, self._rowid, _TAIL_BATCH)
        if not rows:
            # Deleting an app can remove the newest records; SQLite then hands out their
            # rowids again, below our cursor. Follow it down so new records still count.
            self._rowid = min(self._rowid, sql.max_invocation_rowid(conn))
        for row in rows:
            series.invocations.labels(row.script_id, row.status, row.trigger).inc()
            series.latency.labels(row.script_id).observe(row.duration_ms / 1000)
        if rows:
            self._rowid = rows[-1].rowid
        return len(rows)
