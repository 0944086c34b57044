"""Counters of the trigger dispatcher, read by /metrics and the benchmark."""

from __future__ import annotations

import collections
import dataclasses

__all__ = ["DispatcherStats"]


@dataclasses.dataclass
class DispatcherStats:
    """Totals since start-up, plus the latest write-to-start latencies (ms)."""

    delivered: int = 0  # runs that ended ok (their events are purged)
    failed_attempts: int = 0  # runs that did not end ok
    retried: int = 0  # failed attempts scheduled for another try
    dead_lettered: int = 0  # events moved to the dead letters (trigger_loop included)
    loops_cut: int = 0  # events dead-lettered with trigger_loop
    refused: int = 0  # runs the executor refused (admission control); not an attempt
    dead_letter_runs: int = 0  # dead-letter script runs
    cron_fired: int = 0
    cron_skipped: int = 0  # cron runs skipped because the previous one was still going
    in_flight: int = 0  # handler runs going now
    loaded: int = 0  # events held in memory for delivery now
    last_latency_ms: float | None = None  # event written -> handler started, first attempt
    latencies_ms: collections.deque[float] = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=4096)
    )

    def started(self, latency_ms: float) -> None:
        self.last_latency_ms = latency_ms
        self.latencies_ms.append(latency_ms)

    def percentile(self, q: float) -> float | None:
        """The q-th percentile (0..100) of the recent write-to-start latencies."""
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))]

    def snapshot(self) -> dict[str, float | int | None]:
        data = {k: v for k, v in dataclasses.asdict(self).items() if k != "latencies_ms"}
        data["latency_p50_ms"] = self.percentile(50)
        data["latency_p99_ms"] = self.percentile(99)
        return data
