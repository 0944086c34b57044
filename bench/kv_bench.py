"""KV figures: round trips from inside a script, the counter against its SQLite ceiling,
acknowledged writes surviving a SIGKILL, and bytes written per 1,000 sets."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from bench import scripts
from bench.env import APP, Env
from bench.load import count_run, run_load
from bench.measure import Cell, Opts, measure, median_cells
from bench.picloud_server import BenchError
from bench.procs import io_bytes

__all__ = ["run_kv"]

CONCS = (1, 32)
OPS = ("get", "set", "incr", "list")


async def run_kv(env: Env) -> dict[str, Any]:
    out: dict[str, Any] = {"cells": [], "errors": [], "in_script": {}, "bytes": {}}
    for sid, src in (
        ("counter", scripts.COUNTER),
        ("counter-incr", scripts.COUNTER_INCR),
        ("ledger", scripts.LEDGER),
    ):
        await env.admin.deploy(sid, src, APP)
    await env.admin.deploy("kvloop", scripts.KV_LOOP, APP, timeout_ms=30000)
    await _in_script(env, out)
    for step in (_counter, _bytes_sequential, _ledger_after_crash):
        try:
            await step(env, out)
        except (BenchError, OSError, TimeoutError, KeyError) as exc:
            out["errors"].append(f"{step.__name__.strip('_')}: {exc!r}")
    return out


async def _in_script(env: Env, out: dict[str, Any]) -> None:
    budget = 0.5 if env.opts.quick else 1.0
    for op in OPS:
        status, doc, _ = await env.admin.execute("kvloop", f"op={op}&n=1000000&budget={budget}")
        if status != 200 or not isinstance(doc, dict):
            out["errors"].append(f"kvloop {op} -> {status} {doc}")
            continue
        out["in_script"][op] = {
            "n": doc["n"],
            "elapsed_s": doc["elapsed_s"],
            "per_s": doc["n"] / doc["elapsed_s"] if doc["elapsed_s"] else None,
        }


async def _counter(env: Env, out: dict[str, Any]) -> None:
    # Ceiling and PiCloud cells back to back per concurrency (same neighbours), whole
    # rounds repeated; medians reported.
    cells: list[Cell] = []
    for _ in range(env.opts.rounds):
        for conc in CONCS:
            cells.append(
                await measure(
                    env.ceiling.pid,
                    env.ceiling.base + "/counter",
                    "aiohttp+SQLite ceiling",
                    "counter",
                    conc,
                    env.opts,
                )
            )
            for sid, key, system in (
                ("counter", "counter", "PiCloud"),
                ("counter-incr", "counter2", "PiCloud, get + incr"),
            ):
                cells.append(await _picloud_counter(env, sid, key, system, conc))
    out["cells"] = [c.to_json() for c in median_cells(cells)]


async def _picloud_counter(env: Env, sid: str, key: str, system: str, conc: int) -> Cell:
    """One counter cell, with the share of acknowledged increments the counter kept."""
    if env.opts.warmup > 0:
        await run_load(env.execute_url(sid), conc, env.opts.warmup, env.opts.gen)
        await asyncio.sleep(0.3)
    before = await env.admin.kv_get(APP, "bench", key) or 0
    cell = await measure(
        env.picloud.pid, env.execute_url(sid), system, "counter", conc, _no_warmup(env)
    )
    await asyncio.sleep(0.5)  # requests wrk left in flight finish
    after = await env.admin.kv_get(APP, "bench", key) or 0
    # +1: measure() probes the URL once (a 200) before the timed run.
    acked = cell.requests - cell.non2xx + 1
    cell.extra = {"counter_delta": after - before, "acked": acked}
    cell.extra["kept_pct"] = 100.0 * (after - before) / acked if acked else None
    return cell


def _no_warmup(env: Env) -> Opts:
    return replace(env.opts, warmup=0.0)


async def _bytes_sequential(env: Env, out: dict[str, Any]) -> None:
    """1,000 sets in one invocation, one after another."""
    await asyncio.sleep(1)
    wb0, wc0 = io_bytes(env.picloud.pid)
    status, doc, _ = await env.admin.execute("kvloop", "op=set&n=1000&budget=60")
    await asyncio.sleep(1)  # let the WAL writes that follow the last commit land
    wb1, wc1 = io_bytes(env.picloud.pid)
    if status != 200 or doc["n"] != 1000:
        raise BenchError(f"kvloop set -> {status} {doc}")
    out["bytes"]["one_script_1000_sets"] = {"write_bytes": wb1 - wb0, "wchar": wc1 - wc0}


async def _ledger_after_crash(env: Env, out: dict[str, Any]) -> None:
    """1,000 requests at c=32, each a get and a set of its own key; then SIGKILL, restart,
    and check that every acknowledged key is there."""
    total = 300 if env.opts.quick else 1000
    bodies: list[Any] = []
    wb0, wc0 = io_bytes(env.picloud.pid)
    res = await count_run(env.execute_url("ledger"), 32, total, within_s=120, bodies=bodies)
    await asyncio.sleep(1)
    wb1, wc1 = io_bytes(env.picloud.pid)
    out["bytes"][f"concurrent_{total}_requests_c32"] = {
        "sets": total,
        "write_bytes": wb1 - wb0,
        "wchar": wc1 - wc0,
    }
    acked = {b["key"] for b in bodies}
    restart_s = await env.crash_and_restart()
    stored = {item["key"] for item in await env.admin.kv_items(APP, "ledger")}
    out["durability"] = {
        "requests": total,
        "acked": len(acked),
        "errors": res.errors + res.non2xx,
        "missing_after_sigkill": len(acked - stored),
        "restart_s": restart_s,
    }
