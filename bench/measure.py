"""One measured cell (warm-up, load, server CPU per request) and process-tree memory."""

from __future__ import annotations

import contextlib
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil

from bench.load import probe, run_load
from bench.picloud_server import BenchError
from bench.procs import cpu_seconds

__all__ = ["Cell", "Opts", "median_cells", "measure", "memory_breakdown"]


@dataclass
class Opts:
    duration: float = 5.0
    warmup: float = 1.0
    gen: str = "auto"
    quick: bool = False
    rounds: int = 2  # each cell measured this many times, interleaved; medians reported


@dataclass
class Cell:
    system: str
    workload: str
    conc: int
    rps: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    cpu_us: float | None = None
    requests: int = 0
    errors: int = 0
    non2xx: int = 0
    gen: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def measure(pid: int, url: str, system: str, workload: str, conc: int, opts: Opts) -> Cell:
    """Warm up, then one measured closed-loop run with the server tree's CPU around it.

    Raises BenchError, measuring nothing, when the URL does not answer 200 first.
    """
    status, body = await probe(url)
    if status != 200:
        raise BenchError(f"{system} {workload}: GET {url} -> {status} {body[:200]!r}")
    if opts.warmup > 0:
        await run_load(url, conc, opts.warmup, opts.gen)
    cpu0 = cpu_seconds(pid)
    res = await run_load(url, conc, opts.duration, opts.gen)
    cpu1 = cpu_seconds(pid)
    cell = Cell(system, workload, conc, res.rps, res.p50_ms, res.p99_ms)
    cell.requests, cell.errors, cell.non2xx, cell.gen = (
        res.requests,
        res.errors,
        res.non2xx,
        res.gen,
    )
    if res.requests:
        cell.cpu_us = 1e6 * (cpu1 - cpu0) / res.requests
    return cell


def median_cells(cells: list[Cell]) -> list[Cell]:
    """One cell per (system, conc), in first-seen order: medians of the rounds' figures,
    sums of their counts; `extra` counts are summed too."""
    groups: dict[tuple[str, int], list[Cell]] = {}
    for c in cells:
        groups.setdefault((c.system, c.conc), []).append(c)
    return [_median_of(group) for group in groups.values()]


def _med(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _median_of(group: list[Cell]) -> Cell:
    first = group[0]
    out = Cell(first.system, first.workload, first.conc, gen=first.gen)
    out.rps = _med([c.rps for c in group]) or 0.0
    out.p50_ms = _med([c.p50_ms for c in group])
    out.p99_ms = _med([c.p99_ms for c in group])
    out.cpu_us = _med([c.cpu_us for c in group])
    out.requests = sum(c.requests for c in group)
    out.errors = sum(c.errors for c in group)
    out.non2xx = sum(c.non2xx for c in group)
    out.extra = {"rounds": len(group), "rps_each": [round(c.rps, 1) for c in group]}
    for key in ("counter_delta", "acked"):
        if all(key in c.extra for c in group):
            out.extra[key] = sum(c.extra[key] for c in group)
    if out.extra.get("acked"):
        out.extra["kept_pct"] = 100.0 * out.extra["counter_delta"] / out.extra["acked"]
    return out


def _mib(n: int) -> float:
    return round(n / 2**20, 2)


def memory_breakdown(daemon_pid: int) -> dict[str, Any]:
    """RSS of the daemon and of each helper it started (the zygote), USS of their children.

    The daemon's direct children are its helpers (the zygote); the helpers'
    children are the workers.
    """
    out: dict[str, Any] = {"daemon_rss_mib": None, "helpers": [], "workers": []}
    try:
        daemon = psutil.Process(daemon_pid)
        out["daemon_rss_mib"] = _mib(daemon.memory_info().rss)
        helpers = daemon.children()
    except psutil.Error:
        return out
    for helper in helpers:
        with contextlib.suppress(psutil.Error):
            out["helpers"].append(
                {"pid": helper.pid, "cmd": _cmd(helper), "rss_mib": _mib(helper.memory_info().rss)}
            )
            for worker in helper.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    mi = worker.memory_full_info()
                    out["workers"].append(
                        {"pid": worker.pid, "uss_mib": _mib(mi.uss), "rss_mib": _mib(mi.rss)}
                    )
    helpers_rss = sum(h["rss_mib"] for h in out["helpers"])
    out["daemon_plus_helpers_rss_mib"] = round((out["daemon_rss_mib"] or 0) + helpers_rss, 2)
    return out


def _cmd(p: psutil.Process) -> str:
    with contextlib.suppress(psutil.Error):
        return " ".join(p.cmdline())[:80]
    return "?"
