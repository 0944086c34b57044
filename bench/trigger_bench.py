"""Trigger figures: write-to-handler latency, events/s through one and ten triggers,
and whether the backlog grows at 500 events/s offered."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

from bench import scripts
from bench.env import APP, Env
from bench.load import percentile
from bench.picloud_server import BenchError

__all__ = ["run_triggers"]

MANY = 10


async def run_triggers(env: Env) -> dict[str, Any]:
    out: dict[str, Any] = {"errors": []}
    for sid, src in (
        ("ack-write", scripts.ACK_WRITE),
        ("burst", scripts.BURST),
        ("on-lat", scripts.ON_LAT),
        ("on-count", scripts.ON_COUNT),
    ):
        await env.admin.deploy(sid, src, APP, timeout_ms=30000)
    for name, step in (
        ("latency", _latency),
        ("one_trigger", _one_trigger),
        ("many_triggers", _many_triggers),
        ("offered_500", _offered),
    ):
        try:
            out[name] = await step(env)
        except (BenchError, TimeoutError, KeyError, ValueError) as exc:
            out["errors"].append(f"{name}: {exc!r}")
    return out


async def _latency(env: Env) -> dict[str, Any]:
    """Sequential acknowledged writes, spaced out; the handler records when it started."""
    await env.admin.trigger(APP, "latsrc", "on-lat")
    n = 40 if env.opts.quick else 150
    acked: dict[str, float] = {}
    for i in range(n):
        key = f"w{i}"
        status, doc, _ = await env.admin.execute("ack-write", f"key={key}")
        if status != 200:
            raise BenchError(f"ack-write -> {status} {doc}")
        acked[key] = doc["acked"]
        await asyncio.sleep(0.02)
    items = await _wait_items(env, "lat", n, 15.0)
    from_ack, from_at = [], []
    for item in items:
        v = item["value"]
        if item["key"] in acked:
            from_ack.append(1e3 * (v["started"] - acked[item["key"]]))
            from_at.append(1e3 * (v["started"] - _parse_at(v["at"])))
    from_ack.sort()
    from_at.sort()
    return {
        "writes": n,
        "handled": len(from_ack),
        "p50_ms": percentile(from_ack, 0.5),
        "p99_ms": percentile(from_ack, 0.99),
        "at_p50_ms": percentile(from_at, 0.5),
        "at_p99_ms": percentile(from_at, 0.99),
    }


def _parse_at(at: str) -> float:
    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


async def _wait_items(env: Env, coll: str, n: int, within_s: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + within_s
    items: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        items = await env.admin.kv_items(APP, coll)
        if len(items) >= n:
            break
        await asyncio.sleep(0.2)
    return items


async def _done(env: Env, colls: list[str]) -> int:
    total = 0
    for coll in colls:
        total += int(await env.admin.kv_get(APP, "done", coll) or 0)
    return total


async def _drain(env: Env, colls: list[str], total: int, writes: list[str]) -> dict[str, Any]:
    """Write `total` events (bursts into each collection at once), time until all handled."""
    t0 = time.perf_counter()
    per = total // len(colls)
    calls = [
        env.admin.execute("burst", f"coll={c}&n={per}&prefix={p}")
        for c, p in zip(colls, writes, strict=True)
    ]
    for status, doc, _ in await asyncio.gather(*calls):
        if status != 200:
            raise BenchError(f"burst -> {status} {doc}")
    t_written = time.perf_counter() - t0
    deadline = t0 + (30 if env.opts.quick else 60)
    done = 0
    while time.perf_counter() < deadline:
        done = await _done(env, colls)
        if done >= per * len(colls):
            break
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - t0
    return {
        "events": per * len(colls),
        "handled": done,
        "write_s": t_written,
        "elapsed_s": elapsed,
        "events_per_s": done / elapsed if elapsed else None,
    }


async def _one_trigger(env: Env) -> dict[str, Any]:
    await env.admin.trigger(APP, "tp0", "on-count")
    return await _drain(env, ["tp0"], 500 if env.opts.quick else 2000, ["a"])


async def _many_triggers(env: Env) -> dict[str, Any]:
    colls = [f"tp{i}" for i in range(1, MANY + 1)]
    for coll in colls:
        await env.admin.trigger(APP, coll, "on-count")
    res = await _drain(env, colls, 500 if env.opts.quick else 2000, ["a"] * MANY)
    res["triggers"] = MANY
    return res


async def _offered(env: Env) -> dict[str, Any]:
    """50 writes every 100 ms (each tick its own invocation, so a slow one does not hold
    back the next); each second, sample written, handled and pending."""
    tid = await env.admin.trigger(APP, "offer", "on-count")
    seconds = 5 if env.opts.quick else 10
    acked = 0
    gate = asyncio.Semaphore(16)

    async def write(tick: int) -> None:
        nonlocal acked
        async with gate:
            status, _, _ = await env.admin.execute("burst", f"coll=offer&n=50&prefix=b{tick}_")
        acked += 50 if status == 200 else 0

    samples: list[dict[str, Any]] = []
    tasks: list[asyncio.Task[None]] = []
    t0 = time.perf_counter()
    for tick in range(seconds * 10):
        await asyncio.sleep(max(0.0, t0 + tick * 0.1 - time.perf_counter()))
        tasks.append(asyncio.create_task(write(tick)))
        if tick % 10 == 9:
            samples.append(await _sample(env, tid, t0, acked))
    await asyncio.gather(*tasks)
    rate = acked / (time.perf_counter() - t0)
    drain_t0 = time.perf_counter()
    while time.perf_counter() - drain_t0 < 30:
        if await _done(env, ["offer"]) >= acked:
            break
        await asyncio.sleep(0.05)
    drain_s = time.perf_counter() - drain_t0
    growth = _slope([(s["t_s"], s["backlog"]) for s in samples])
    return {
        "offered_per_s": rate,
        "samples": samples,
        "backlog_growth_per_s": growth,
        "drain_after_s": drain_s,
        "handled": await _done(env, ["offer"]),
        "offered": acked,
    }


async def _sample(env: Env, tid: str, t0: float, offered: int) -> dict[str, Any]:
    done = await _done(env, ["offer"])
    pending = await env.admin.trigger_pending(tid)
    return {
        "t_s": round(time.perf_counter() - t0, 2),
        "offered": offered,
        "handled": done,
        # The outbox's own count where the admin API reports it; else written - handled.
        "backlog": pending if pending is not None else offered - done,
        "pending_api": pending,
    }


def _slope(points: list[tuple[float, int]]) -> float | None:
    """Least-squares growth per second of the backlog over the whole offered period."""
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else None
