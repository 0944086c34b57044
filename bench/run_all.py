"""`make bench`: every benchmark in one run, with its ceilings, then the peers harness.

  .venv/bin/python -m bench.run_all            # full: ~6-8 min on 2 cores
  .venv/bin/python -m bench.run_all --quick    # ~3 min, shorter runs and fewer samples
  .venv/bin/python -m bench.run_all --only executor,kv --no-peers

Everything talks to 127.0.0.1 only, every run is bounded, and the whole run
has a hard cap (--max-minutes); every server it started is killed at the end,
even on error. The markdown goes to stdout and to bench/results/latest.md.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

from bench.env import APP, Env
from bench.executor_bench import run_executor
from bench.kv_bench import run_kv
from bench.load import have_wrk
from bench.measure import Opts
from bench.peers import run_peers
from bench.picloud_server import Admin, BenchError, start_picloud, wait_ready
from bench.procs import free_port, kill_all, start_server, wait_http
from bench.report import embed, render
from bench.trigger_bench import run_triggers

__all__ = ["main"]

RESULTS = Path(__file__).resolve().parent / "results"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
SECTIONS = ("executor", "kv", "triggers", "peers")
Section = Callable[[Env], Awaitable[dict[str, Any]]]


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorter runs, fewer samples")
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma list of %(default)s")
    ap.add_argument("--no-peers", action="store_true", help="skip the shared peers harness")
    ap.add_argument("--duration", type=float, help="seconds per measured run (5; quick 2)")
    ap.add_argument("--warmup", type=float, help="seconds of warm-up per run (1; quick 0.5)")
    ap.add_argument(
        "--rounds", type=int, help="rounds of every cell, medians reported (2; quick 1)"
    )
    ap.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    ap.add_argument("--max-minutes", type=float, default=9.5, help="hard cap on the whole run")
    ap.add_argument("--out", type=Path, default=RESULTS / "latest.md")
    ap.add_argument(
        "--docs", action="store_true", help="also put the report into docs/performance.md"
    )
    args = ap.parse_args(argv)
    args.only = [s for s in args.only.split(",") if s]
    if args.no_peers and "peers" in args.only:
        args.only.remove("peers")
    return args


def _describe(opts: Opts, argv: list[str]) -> dict[str, str]:
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
         if ln.startswith("model name")), platform.machine())  # fmt: skip
    mem = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "command": " ".join(["python -m bench.run_all", *argv]),
        "machine": f"{cpu}, {os.cpu_count()} cores, {int(mem) // 1024} MiB RAM, "
        f"kernel {platform.release()}, Python {platform.python_version()}",
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "git commit": commit or "?",
        "load generator": (opts.gen if opts.gen != "auto" else ("wrk" if have_wrk() else "python"))
        + f", closed loop, {opts.warmup:g} s warm-up + {opts.duration:g} s measured per cell; "
        f"{opts.rounds} interleaved round(s) of every cell, medians shown",
        "ratios": "against the ceiling measured in the same run, same concurrency",
    }


async def _start(tmp: Path) -> tuple[Any, Any, Admin]:
    port = free_port()
    ceiling = start_server(
        "ceiling",
        [sys.executable, "-m", "bench.ceiling", "--port", str(port), "--db", str(tmp / "ceil.db")],
        {},
        port,
        tmp / "logs" / "ceiling.log",
    )
    picloud = start_picloud(tmp / "picloud-state", tmp / "logs" / "picloud.log")
    await wait_http(ceiling.base + "/hello", 20, ceiling.proc)
    await wait_ready(picloud)
    admin = Admin(picloud.base)
    await admin.make_app(APP)
    return ceiling, picloud, admin


async def _sections(args: argparse.Namespace, opts: Opts, res: dict[str, Any]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="picloud-bench-"))
    env: Env | None = None
    try:
        ceiling, picloud, admin = await _start(tmp)
        env = Env(picloud, ceiling, admin, opts, tmp)
        table: dict[str, Section] = {
            "executor": run_executor, "kv": run_kv, "triggers": run_triggers,
        }  # fmt: skip
        for name, fn in table.items():
            if name in args.only:
                await _one(name, fn, env, res)
    finally:
        if env is not None:
            await env.admin.close()
            res["picloud_log_tail"] = _tail(env.picloud.log_path)
        kill_all()
        shutil.rmtree(tmp, ignore_errors=True)


async def _one(name: str, fn: Section, env: Env, res: dict[str, Any]) -> None:
    t0 = time.monotonic()
    print(f"[bench] {name} ...", flush=True)
    try:
        res[name] = await fn(env)
    except (BenchError, OSError, RuntimeError, KeyError, TypeError, ValueError) as exc:
        res.setdefault("section_errors", {})[name] = f"{type(exc).__name__}: {exc}"
    except aiohttp.ClientError as exc:
        res.setdefault("section_errors", {})[name] = f"{type(exc).__name__}: {exc}"
    print(f"[bench] {name} done in {time.monotonic() - t0:.0f} s", flush=True)
    if not env.picloud.alive():
        # A crash here must not take the next sections down with it.
        res.setdefault("section_errors", {})[f"{name} (daemon)"] = "PiCloud exited; restarted"
        await env.crash_and_restart()


def _tail(path: Path, n: int = 20) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-n:]
    except OSError:
        return []


async def _run(args: argparse.Namespace, opts: Opts, res: dict[str, Any]) -> None:
    deadline = time.monotonic() + args.max_minutes * 60
    own = [s for s in args.only if s != "peers"]
    if own:
        try:
            await asyncio.wait_for(_sections(args, opts, res), deadline - time.monotonic() - 60)
        except TimeoutError:
            res.setdefault("section_errors", {})["cap"] = (
                "hit --max-minutes; later sections skipped"
            )
        except (BenchError, RuntimeError, OSError, aiohttp.ClientError) as exc:
            res.setdefault("section_errors", {})["start"] = f"{type(exc).__name__}: {exc}"
    if "peers" in args.only:
        print("[bench] peers harness ...", flush=True)
        left = deadline - time.monotonic()
        try:
            res["peers"] = await run_peers(args.quick, left)
        except TimeoutError:
            res["peers"] = {"error": f"peers harness did not finish within {left:.0f} s"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _args(argv)
    opts = Opts(
        duration=args.duration or (2.0 if args.quick else 5.0),
        warmup=args.warmup if args.warmup is not None else (0.5 if args.quick else 1.0),
        gen=args.loadgen,
        quick=args.quick,
        rounds=args.rounds or (1 if args.quick else 2),
    )
    atexit.register(kill_all)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    res: dict[str, Any] = {"meta": {"started": started, "describe": _describe(opts, argv)}}
    try:
        uvloop.run(_run(args, opts, res))
    finally:
        kill_all()
    res["meta"]["describe"]["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    text = render(res)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    print(f"[bench] written {args.out} and {args.out.with_suffix('.json')}", flush=True)
    if args.docs:
        DOCS.write_text(embed(DOCS.read_text(), text))
        print(f"[bench] updated {DOCS}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
