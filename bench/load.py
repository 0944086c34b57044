"""Closed-loop HTTP load: wrk with its latency distribution, or a small aiohttp client."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

__all__ = ["LoadResult", "count_run", "have_wrk", "percentile", "probe", "run_load"]

_LOCAL = {"127.0.0.1", "localhost", "::1"}
_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


@dataclass
class LoadResult:
    requests: int = 0
    rps: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int = 0  # socket errors and timeouts
    non2xx: int = 0
    gen: str = ""
    statuses: dict[int, int] = field(default_factory=dict)


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def percentile(sorted_vals: list[float], q: float) -> float | None:
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, round(q * (len(sorted_vals) - 1))))
    return sorted_vals[i]


def _check_local(url: str) -> None:
    if urlsplit(url).hostname not in _LOCAL:
        raise ValueError(f"refusing a non-loopback target: {url}")


async def probe(url: str) -> tuple[int, bytes]:
    """One GET: (status, body); a workload is only measured once it answers 200."""
    _check_local(url)
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
        http.get(url) as resp,
    ):
        return resp.status, await resp.read()


async def run_load(url: str, conc: int, duration: float, gen: str = "auto") -> LoadResult:
    """conc connections sending GETs back to back for duration seconds."""
    _check_local(url)
    if gen == "auto":
        gen = "wrk" if have_wrk() else "python"
    if gen == "wrk":
        return await _wrk(url, conc, duration)
    return await _python(url, conc, duration)


async def _wrk(url: str, conc: int, duration: float) -> LoadResult:
    secs = max(1, round(duration))
    proc = await asyncio.create_subprocess_exec(
        *("wrk", "-t1", f"-c{conc}", f"-d{secs}s", "--timeout", "10s", "--latency", url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), secs + 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed: {err.decode()[:300]}")
    return parse_wrk(out.decode())


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * _UNIT_MS[m.group(2)]


def parse_wrk(out: str) -> LoadResult:
    res = LoadResult(gen="wrk")
    if m := re.search(r"(\d+) requests in", out):
        res.requests = int(m.group(1))
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        res.rps = float(m.group(1))
    if m := re.search(r"^\s+50%\s+(\S+)", out, re.M):
        res.p50_ms = _ms(m.group(1))
    if m := re.search(r"^\s+99%\s+(\S+)", out, re.M):
        res.p99_ms = _ms(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        res.errors = sum(int(x) for x in m.groups())
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        res.non2xx = int(m.group(1))
    return res


async def _python(url: str, conc: int, duration: float) -> LoadResult:
    lat: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    stop_at = time.perf_counter() + duration
    conn = aiohttp.TCPConnector(limit=conc, force_close=False)

    async def worker(http: aiohttp.ClientSession) -> None:
        nonlocal errors
        while (t0 := time.perf_counter()) < stop_at:
            try:
                async with http.get(url) as resp:
                    await resp.read()
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1
            except (aiohttp.ClientError, OSError, TimeoutError):
                errors += 1
                continue
            lat.append(time.perf_counter() - t0)

    t_start = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as http:
        await asyncio.gather(*(worker(http) for _ in range(conc)))
    elapsed = time.perf_counter() - t_start
    return _summary(lat, statuses, errors, elapsed, "python")


def _summary(
    lat: list[float], statuses: dict[int, int], errors: int, elapsed: float, gen: str
) -> LoadResult:
    lat.sort()
    p50, p99 = percentile(lat, 0.5), percentile(lat, 0.99)
    return LoadResult(
        requests=len(lat),
        rps=len(lat) / elapsed if elapsed > 0 else 0.0,
        p50_ms=None if p50 is None else p50 * 1e3,
        p99_ms=None if p99 is None else p99 * 1e3,
        errors=errors,
        non2xx=sum(n for s, n in statuses.items() if not 200 <= s < 300),
        gen=gen,
        statuses=statuses,
    )


async def count_run(
    url: str, conc: int, total: int, within_s: float = 60.0, bodies: list[Any] | None = None
) -> LoadResult:
    """Exactly `total` GETs over conc connections, every answer awaited (for exact counts).

    With `bodies`, the decoded JSON of every 200 answer is appended to it.
    """
    _check_local(url)
    lat: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    left = total

    async def worker(http: aiohttp.ClientSession) -> None:
        nonlocal left, errors
        while left > 0:
            left -= 1
            t0 = time.perf_counter()
            try:
                async with http.get(url) as resp:
                    await resp.read()
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1
                    if bodies is not None and resp.status == 200:
                        bodies.append(await resp.json())
            except (aiohttp.ClientError, OSError, TimeoutError):
                errors += 1
                continue
            lat.append(time.perf_counter() - t0)

    t_start = time.perf_counter()
    conn = aiohttp.TCPConnector(limit=conc)
    async with aiohttp.ClientSession(
        connector=conn, timeout=aiohttp.ClientTimeout(total=10)
    ) as http:
        await asyncio.wait_for(asyncio.gather(*(worker(http) for _ in range(conc))), within_s)
    return _summary(lat, statuses, errors, time.perf_counter() - t_start, "python")
