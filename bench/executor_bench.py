"""Executor figures: hello warm and fresh against the ceiling, cold start, memory."""

from __future__ import annotations

import asyncio
import statistics
from typing import Any

from bench import scripts
from bench.env import APP, Env
from bench.measure import Cell, measure, median_cells, memory_breakdown
from bench.picloud_server import BenchError

__all__ = ["run_executor"]

CONCS = (1, 32)


async def run_executor(env: Env) -> dict[str, Any]:
    out: dict[str, Any] = {"cells": [], "errors": []}
    modes = await _deploy(env, out["errors"])
    await asyncio.sleep(1)
    out["memory_idle"] = memory_breakdown(env.picloud.pid)
    # Ceiling and PiCloud cells back to back per concurrency, so both see the same
    # neighbours on a shared machine; whole rounds repeated, medians reported.
    cells: list[Cell] = []
    for _ in range(env.opts.rounds):
        for conc in CONCS:
            cells += await _round(env, modes, conc, out["errors"])
    out["cells"] = [c.to_json() for c in median_cells(cells)]
    # The warm workers have been idle through the last fresh cell: what a warm pool costs.
    await asyncio.sleep(1.5)
    out["memory_after_warm"] = memory_breakdown(env.picloud.pid)
    try:
        out["cold"] = await _cold_start(env, 5 if env.opts.quick else 15)
    except BenchError as exc:
        out["errors"].append(f"cold start: {exc}")
    return out


async def _round(env: Env, modes: dict[str, str], conc: int, errors: list[str]) -> list[Cell]:
    cells = [
        await measure(
            env.ceiling.pid, env.ceiling.base + "/hello", "aiohttp ceiling", "hello", conc, env.opts
        )
    ]
    for mode, sid in modes.items():
        try:
            cells.append(
                await measure(
                    env.picloud.pid,
                    env.execute_url(sid),
                    f"PiCloud {mode}",
                    "hello",
                    conc,
                    env.opts,
                )
            )
        except BenchError as exc:
            errors.append(str(exc))
    return cells


async def _deploy(env: Env, errors: list[str]) -> dict[str, str]:
    """Deploy hello (warm) and hello-fresh; a mode the daemon refuses is reported, not fatal."""
    modes: dict[str, str] = {}
    await env.admin.deploy("hello", scripts.HELLO, APP)
    modes["warm"] = "hello"
    try:
        await env.admin.deploy("hello-fresh", scripts.HELLO, APP, isolation="fresh")
        modes["fresh"] = "hello-fresh"
    except BenchError as exc:
        errors.append(f"fresh isolation: {exc}")
    for sid in modes.values():
        status, doc, _ = await env.admin.execute(sid)
        if status != 200 or doc != {"message": "hello", "ok": True}:
            raise BenchError(f"execute {sid} -> {status} {doc}")
    return modes


async def _cold_start(env: Env, rounds: int) -> dict[str, Any]:
    """First invocation after a PUT that makes a new version, minus a warm one's time."""
    await env.admin.deploy("hello-cold", scripts.HELLO, APP)
    firsts: list[float] = []
    warms: list[float] = []
    for i in range(rounds):
        await env.admin.update("hello-cold", scripts.HELLO + f"\n# version {i + 2}\n")
        status, _, first = await env.admin.execute("hello-cold")
        if status != 200:
            raise BenchError(f"first call after deploy -> {status}")
        times = []
        for _ in range(5):
            _, _, t = await env.admin.execute("hello-cold")
            times.append(t)
        firsts.append(first * 1e3)
        warms.append(statistics.median(times) * 1e3)
        await asyncio.sleep(0.05)
    colds = [f - w for f, w in zip(firsts, warms, strict=True)]
    return {
        "rounds": rounds,
        "first_ms_median": statistics.median(firsts),
        "warm_ms_median": statistics.median(warms),
        "cold_ms_median": statistics.median(colds),
        "cold_ms_max": max(colds),
    }
