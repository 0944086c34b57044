"""Prometheus metrics: counters fed from the store, and gauges read at scrape time.

Invocation counters and latency histograms (`picloud.ops.telemetry`) are fed by
tailing the `invocations` table by rowid at scrape time, so no hot path carries a
metrics call and whatever records an invocation (HTTP, trigger, dead-letter run)
counts. Everything else (board, store, executor, trigger dispatcher, retention,
backups) is read when Prometheus scrapes, by `ScrapeCollector`. Only GET /metrics
imports this module (and with it prometheus_client), on its first scrape.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from picloud.ops import board
from picloud.ops.telemetry import Telemetry
from picloud.store import Database
from picloud.store import retention as sql

__all__ = ["ScrapeCollector", "respond"]
# DispatcherStats fields exported as counters (name, help); the rest are gauges below.
_TRIGGER_COUNTERS = {
    "delivered": ("picloud_trigger_deliveries", "Triggered runs that ended ok."),
    "failed_attempts": ("picloud_trigger_failed_attempts", "Triggered runs that failed."),
    "retried": ("picloud_trigger_retries", "Failed attempts scheduled for another try."),
    "dead_lettered": ("picloud_trigger_dead_letters", "Events moved to the dead letters."),
    "loops_cut": ("picloud_trigger_loops_cut", "Events dead-lettered with trigger_loop."),
    "refused": ("picloud_trigger_refused", "Triggered runs refused by admission control."),
    "dead_letter_runs": ("picloud_dead_letter_runs", "Dead-letter script runs."),
    "cron_fired": ("picloud_cron_fired", "Cron runs started."),
    "cron_skipped": ("picloud_cron_skipped", "Cron runs skipped: the previous was running."),
}


async def respond(
    request: web.Request,
    collector: ScrapeCollector,
    telemetry: Telemetry,
) -> web.StreamResponse:
    """The scrape's answer, in whichever text format the scraper asked for."""
    # A registry per scrape: the collector holds this scrape's figures, so two concurrent
    # scrapes never see each other's.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    registry.register(_Forward(telemetry.registry))
    return await make_aiohttp_handler(registry)(request)


class _Forward:
    """The daemon-long counters, re-exported through the per-scrape registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self._registry.collect()


class ScrapeCollector:
    """The figures of one scrape: the health snapshot, the store, retention and backups."""

    def __init__(
        self,
        snapshot: dict[str, Any],
        figures: sql.StoreFigures,
        db: Database,
        extra: dict[str, Any],
        triggers: dict[str, Any] | None = None,
    ) -> None:
        self._snap = snapshot
        self._figures = figures
        self._db = db
        self._extra = extra
        self._triggers = triggers

    def collect(self) -> Iterator[Metric]:
        yield from _board(self._snap)
        yield from _store(self._figures, self._db, self._snap)
        yield from _runtime(self._snap, self._extra)
        if self._triggers is not None:
            yield from _dispatcher(self._triggers)


def _gauge(
    name: str, doc: str, value: float | None, labels: dict[str, str] | None = None
) -> Metric:
    metric = GaugeMetricFamily(name, doc, labels=list(labels or {}))
    if value is not None:
        metric.add_metric(list((labels or {}).values()), float(value))
    return metric


def _counter(name: str, doc: str, value: float | None) -> Metric:
    metric = CounterMetricFamily(name, doc)
    if value is not None:
        metric.add_metric([], float(value))
    return metric


def _board(s: dict[str, Any]) -> Iterator[Metric]:
    cpu = GaugeMetricFamily("picloud_cpu_usage_ratio", "CPU busy share per core.", labels=["cpu"])
    for i, pct in enumerate(s["cpu"]["percent_per_core"]):
        cpu.add_metric([str(i)], pct / 100)
    yield cpu
    load = GaugeMetricFamily("picloud_load_average", "System load average.", labels=["period"])
    for period, value in (s["cpu"]["load"] or {}).items():
        load.add_metric([period], value)
    yield load
    mem = s["memory"]
    yield _gauge("picloud_memory_total_bytes", "Physical memory.", mem["total_bytes"])
    yield _gauge("picloud_memory_available_bytes", "Memory available.", mem["available_bytes"])
    yield _gauge("picloud_swap_total_bytes", "Swap size.", mem["swap_total_bytes"])
    yield _gauge("picloud_swap_used_bytes", "Swap in use.", mem["swap_used_bytes"])
    yield _gauge("picloud_temperature_celsius", "SoC temperature.", s["temperature_celsius"])
    yield _throttled(s["throttling"])
    disk = s["disk"]
    yield _gauge("picloud_disk_total_bytes", "State dir file system size.", disk["total_bytes"])
    yield _gauge("picloud_disk_free_bytes", "State dir file system free.", disk["free_bytes"])
    yield _gauge("picloud_disk_read_only", "1 if the state dir is read-only.", disk["read_only"])
    yield _counter(
        "picloud_disk_written_bytes",
        "Bytes written to the state dir's block device since boot (/proc/diskstats).",
        disk["written_bytes_since_boot"],
    )
    yield _gauge(
        "picloud_memory_cgroup_enabled",
        "1 if the memory cgroup controller is on.",
        s["memory_cgroup"],
    )
    yield _gauge("picloud_system_uptime_seconds", "Since boot.", s["uptime"]["system_s"])


def _throttled(throttling: dict[str, Any] | None) -> Metric:
    metric = GaugeMetricFamily(
        "picloud_throttled",
        "Raspberry Pi firmware throttling flags (1 = set), now and since boot.",
        labels=["condition", "scope"],
    )
    if throttling is not None:
        for scope in ("now", "since_boot"):
            for condition in board.THROTTLE_FLAGS.values():
                metric.add_metric([condition, scope], float(throttling[scope][condition]))
    return metric


def _store(f: sql.StoreFigures, db: Database, s: dict[str, Any]) -> Iterator[Metric]:
    yield _counter("picloud_store_commits", "Write transactions committed.", db.commits)
    yield _counter("picloud_store_writes", "Writes committed (several per commit).", db.writes)
    yield _gauge("picloud_db_size_bytes", "Database file size.", s["database"]["size_bytes"])
    yield _gauge("picloud_db_wal_bytes", "WAL file size.", s["database"]["wal_bytes"])
    yield _gauge(
        "picloud_db_free_bytes", "Free pages inside the database file.", f.pages.free_bytes
    )
    backlog = GaugeMetricFamily(
        "picloud_trigger_events", "Undelivered trigger events, by state.", labels=["state"]
    )
    for state in ("pending", "retrying"):
        backlog.add_metric([state], f.events_backlog.get(state, 0))
    yield backlog
    yield _gauge("picloud_dead_letters", "Dead letters kept.", f.dead_letters)
    kv = GaugeMetricFamily("picloud_kv_stored_bytes", "KV bytes held, by app.", labels=["app"])
    for app, n in sorted(f.kv_bytes.items()):
        kv.add_metric([app], n)
    yield kv
    yield _gauge("picloud_apps", "Apps.", f.apps)
    yield _gauge("picloud_scripts", "Scripts.", f.scripts)


def _runtime(s: dict[str, Any], extra: dict[str, Any]) -> Iterator[Metric]:
    yield _gauge("picloud_uptime_seconds", "Since the daemon started.", s["uptime"]["daemon_s"])
    procs = s["processes"]
    yield _gauge(
        "picloud_daemon_memory_bytes", "Daemon resident memory.", procs["daemon_rss_bytes"]
    )
    yield _gauge(
        "picloud_workers_memory_bytes",
        "Resident memory of the zygote and workers.",
        procs["workers_rss_bytes"],
    )
    yield _gauge(
        "picloud_worker_processes", "Zygote and worker processes.", procs["worker_processes"]
    )
    yield _gauge("picloud_invocations_running", "Invocations running.", s["invocations"]["running"])
    yield _gauge(
        "picloud_queue_depth", "Invocations waiting for a worker.", s["invocations"]["queued"]
    )
    pool = s.get("pool") or {}
    yield _gauge("picloud_workers", "Sandboxed workers in the pool.", pool.get("workers"))
    yield _gauge("picloud_idle_workers", "Idle workers ready for a job.", pool.get("idle_workers"))
    yield _counter(
        "picloud_admission_refused",
        "Invocations refused by admission control.",
        pool.get("refused"),
    )
    yield _counter("picloud_zygote_restarts", "Zygote restarts.", pool.get("zygote_restarts"))
    yield _sandbox(s.get("sandbox"))
    for name, (doc, value) in extra.items():
        if isinstance(value, dict):
            yield _labelled(name, doc, value)
        elif name.endswith("_total"):
            yield _counter(name.removesuffix("_total"), doc, value)
        else:
            yield _gauge(name, doc, value)


def _dispatcher(stats: dict[str, Any]) -> Iterator[Metric]:
    """The trigger dispatcher's own counters (DispatcherStats.snapshot())."""
    for field, (name, doc) in _TRIGGER_COUNTERS.items():
        yield _counter(name, doc, stats.get(field))
    yield _gauge(
        "picloud_trigger_runs_in_flight", "Handler runs going now.", stats.get("in_flight")
    )
    yield _gauge("picloud_trigger_events_loaded", "Events held for delivery.", stats.get("loaded"))
    latency = GaugeMetricFamily(
        "picloud_trigger_start_latency_seconds",
        "Event written to handler started, over the recent first attempts.",
        labels=["quantile"],
    )
    for quantile, field in (("0.5", "latency_p50_ms"), ("0.99", "latency_p99_ms")):
        if isinstance(stats.get(field), int | float):
            latency.add_metric([quantile], stats[field] / 1000)
    yield latency


def _sandbox(layers: Any) -> Metric:
    """Each boolean sandbox layer as 1 (on) or 0 (off)."""
    metric = GaugeMetricFamily(
        "picloud_sandbox_layer", "Sandbox layers in force (1 = on).", labels=["layer"]
    )
    if isinstance(layers, dict):
        for name, on in sorted(layers.items()):
            if isinstance(on, bool):
                metric.add_metric([str(name)], float(on))
    return metric


def _labelled(name: str, doc: str, values: dict[str, Any]) -> Metric:
    """`{label_name: {label_value: number}}` as one family (counter when named *_total)."""
    [(label, series)] = values.items()
    family = (
        CounterMetricFamily(name.removesuffix("_total"), doc, labels=[label])
        if name.endswith("_total")
        else GaugeMetricFamily(name, doc, labels=[label])
    )
    for key, value in sorted(series.items()):
        if (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            or isinstance(value, bool)
        ):
            family.add_metric([str(key)], float(value))
    return family
