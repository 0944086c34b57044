"""The health snapshot of /api/v1/admin/system and /metrics: psutil plus the board's files.

`snapshot()` is synchronous and reads /proc and /sys, so callers run it in a thread.
Whatever the board or the platform does not offer is None, never an error. psutil
loads with the first snapshot, not at start-up (~0.9 MiB resident on an idle daemon):
the CPU counters primed at start-up are read from /proc/stat the way psutil reads them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Any

from picloud.ops import board

__all__ = ["DiskBaseline", "Probe", "executor_figures", "prime_cpu", "snapshot"]

log = logging.getLogger(__name__)

# Below this the rate since the daemon started is too noisy; we fall back to since boot.
_MIN_BASELINE_S = 600.0
_DAY_S = 86400.0


@dataclasses.dataclass(frozen=True, slots=True)
class DiskBaseline:
    """Bytes written to the state directory's device when the daemon started."""

    at: float
    written: int


@dataclasses.dataclass
class Probe:
    """Where the snapshot looks: the state directory, the board root, the executor."""

    state_dir: Path
    db_path: Path
    started_at: float = dataclasses.field(default_factory=time.time)
    root: Path = board.ROOT
    executor: object | None = None
    baseline: DiskBaseline | None = None

    def take_baseline(self) -> None:
        device = self.device()
        written = board.bytes_written(device, self.root) if device else None
        if written is not None:
            self.baseline = DiskBaseline(time.time(), written)

    def device(self) -> str | None:
        try:
            return board.block_device(os.stat(self.state_dir).st_dev, self.root)
        except OSError:
            return None


class _CpuMeter:
    """Busy share per CPU since the last reading, as psutil.cpu_percent(None, percpu=True)."""

    def __init__(self) -> None:
        self._last: list[tuple[int, ...]] | None = None

    def percent_per_core(self) -> list[float] | None:
        """None when /proc/stat cannot be read (the caller asks psutil then)."""
        now = board.cpu_times()
        if now is None:
            return None
        last, self._last = self._last, now
        if last is None or len(last) != len(now):
            last = now  # no earlier reading (or CPUs came or went): 0.0, as psutil says
        return [_busy_percent(a, b) for a, b in zip(last, now, strict=True)]


def _busy_percent(before: tuple[int, ...], after: tuple[int, ...]) -> float:
    delta = [max(0, b - a) for a, b in zip(before, after, strict=True)]
    total = sum(delta) - delta[8] - delta[9]  # guest time is counted in user time already
    busy = total - delta[3] - delta[4]  # idle and iowait
    if total <= 0:
        return 0.0
    return round(min(max(0.0, 100.0 * busy / total), 100.0), 1)


_CPU = _CpuMeter()


def prime_cpu() -> None:
    """The first busy share needs an earlier reading; take it once at start-up."""
    if _CPU.percent_per_core() is None:
        import psutil

        psutil.cpu_percent(interval=None, percpu=True)


def snapshot(probe: Probe) -> dict[str, Any]:
    """Every health figure, as one JSON-ready dict (see docs/operations.md)."""
    return {
        "cpu": _cpu(),
        "memory": _memory(),
        "temperature_celsius": board.read_temperature(probe.root),
        "throttling": board.read_throttled(probe.root),
        "disk": _disk(probe),
        "database": _database_files(probe.db_path),
        "uptime": {
            "daemon_s": round(time.time() - probe.started_at, 1),
            "system_s": _system_uptime(probe.root),
        },
        "processes": _processes(),
        "memory_cgroup": board.memory_cgroup(probe.root),
        **executor_figures(probe.executor),
    }


def _cpu() -> dict[str, Any]:
    try:
        load1, load5, load15 = os.getloadavg()
        load: dict[str, float] | None = {"1m": load1, "5m": load5, "15m": load15}
    except OSError:
        load = None
    percent = _CPU.percent_per_core()
    if percent is None:
        import psutil

        percent = psutil.cpu_percent(interval=None, percpu=True)
    return {"count": os.cpu_count() or None, "percent_per_core": percent, "load": load}


def _memory() -> dict[str, Any]:
    import psutil

    vm = psutil.virtual_memory()
    swap = psutil.swap_memory()
    return {
        "total_bytes": vm.total,
        "available_bytes": vm.available,
        "percent": vm.percent,
        "swap_total_bytes": swap.total,
        "swap_used_bytes": swap.used,
    }


def _disk(probe: Probe) -> dict[str, Any]:
    import psutil

    out: dict[str, Any] = {"path": str(probe.state_dir)}
    try:
        usage = psutil.disk_usage(str(probe.state_dir))
        read_only = bool(os.statvfs(probe.state_dir).f_flag & os.ST_RDONLY)
    except OSError:
        usage, read_only = None, None
    out["total_bytes"] = usage.total if usage else None
    out["used_bytes"] = usage.used if usage else None
    out["free_bytes"] = usage.free if usage else None
    out["percent"] = usage.percent if usage else None
    out["read_only"] = read_only
    out.update(_writes(probe))
    return out


def _writes(probe: Probe) -> dict[str, Any]:
    """Bytes written to the state directory's block device, and the rate per day.

    /proc/diskstats counts every writer to the device (the journal, apt, the WAL
    checkpoints), which is what wears an SD card; /proc/self/io would miss them.
    """
    device = probe.device()
    written = board.bytes_written(device, probe.root) if device else None
    per_day, basis = None, None
    now = time.time()
    base = probe.baseline
    if written is not None and base is not None and now - base.at >= _MIN_BASELINE_S:
        per_day, basis = (written - base.written) / (now - base.at) * _DAY_S, "daemon_start"
    elif written is not None:
        uptime = _system_uptime(probe.root)
        if uptime:
            per_day, basis = written / uptime * _DAY_S, "boot"
    return {
        "device": device,
        "written_bytes_since_boot": written,
        "written_bytes_per_day": round(per_day) if per_day is not None else None,
        "written_per_day_basis": basis,
        "daemon_written_bytes": _daemon_written(),
    }


def _daemon_written() -> int | None:
    import psutil

    try:
        return int(psutil.Process().io_counters().write_bytes)
    except (AttributeError, OSError, psutil.Error):
        return None


def _system_uptime(root: Path) -> float | None:
    uptime = board.system_uptime_s(root)
    if uptime is None and root == board.ROOT:
        import psutil

        uptime = time.time() - psutil.boot_time()
    return round(uptime, 1) if uptime is not None else None


def _database_files(db_path: Path) -> dict[str, Any]:
    def size(path: Path) -> int | None:
        try:
            return path.stat().st_size
        except OSError:
            return None

    wal = db_path.with_name(db_path.name + "-wal")
    return {"path": str(db_path), "size_bytes": size(db_path), "wal_bytes": size(wal) or 0}


def _processes() -> dict[str, Any]:
    """The daemon's resident memory and that of its process tree (zygote and workers)."""
    import psutil

    me = psutil.Process()
    workers_rss, workers = 0, 0
    try:
        children = me.children(recursive=True)
    except psutil.Error:
        children = []
    for child in children:
        try:
            workers_rss += child.memory_info().rss
            workers += 1
        except psutil.Error:  # exited between listing and reading
            continue
    return {
        "daemon_rss_bytes": me.memory_info().rss,
        "workers_rss_bytes": workers_rss,
        "worker_processes": workers,
    }


def executor_figures(executor: object | None) -> dict[str, Any]:
    """Running and queued invocations, the worker pool and the sandbox layers in force.

    Read from the executor's `stats()` dict where it has one (SandboxExecutor does),
    else from attributes of the same names; whatever it lacks is None.
    """
    stats = _attr(executor, "stats")
    stats = stats if isinstance(stats, dict) else {}

    def figure(*names: str) -> int | None:
        for name in names:
            if isinstance(stats.get(name), int | float):
                return int(stats[name])
        return _number(executor, *names)

    pool = {
        name: figure(name) for name in ("workers", "idle_workers", "refused", "zygote_restarts")
    }
    return {
        "invocations": {
            "running": figure("running", "active"),
            "queued": figure("queued", "queue_depth", "waiting"),
        },
        "pool": pool if any(v is not None for v in pool.values()) else None,
        "sandbox": _layers(executor),
    }


def _attr(obj: object | None, name: str) -> Any:
    if obj is None:
        return None
    try:
        value = getattr(obj, name, None)
        return value() if callable(value) else value
    except Exception:  # noqa: BLE001 - a failing probe must not break the health page
        log.debug("executor.%s failed", name, exc_info=True)
        return None


def _number(obj: object | None, *names: str) -> int | None:
    for name in names:
        value = _attr(obj, name)
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            return int(value)
        if isinstance(value, list | tuple | set | dict):
            return len(value)
    return None


def _layers(executor: object | None) -> Any:
    for name in ("sandbox_report", "layers"):
        value = _attr(executor, name)
        if value is None:
            continue
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.asdict(value)
        if isinstance(value, dict | list | str | bool | int | float):
            return value
        return str(value)
    return None
