"""PiCloud beside workerd (Miniflare), Node-RED and bare aiohttp, via the shared peers harness."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from pathlib import Path
from typing import Any

__all__ = ["HARNESS", "PEERS", "run_peers"]

HARNESS = Path(os.environ.get("PICLOUD_PEERS_HARNESS", "/work/shared/bench/peers"))
PEERS = "aiohttp_bare,miniflare,nodered"
PORT = 8400


def _argv(quick: bool) -> list[str]:
    adapter = Path(__file__).resolve().parent / "peer_picloud.sh"
    base = f"http://127.0.0.1:{PORT}/api/v1/execute"
    return [
        str(HARNESS / "run.sh"),
        *("--peers", PEERS),
        *("--reps", "1", "--duration", "3", "--warmup", "1"),
        *("--settle", "1" if quick else "2", "--max-minutes", "6"),
        *("--add", "picloud", f"exec {adapter}", f"{base}/hello", f"{base}/counter"),
    ]


async def run_peers(quick: bool, within_s: float) -> dict[str, Any]:
    """Run the harness once (its own process group, killed on timeout); return its table."""
    if not (HARNESS / "run.sh").exists():
        return {"error": f"no peers harness at {HARNESS}"}
    argv = _argv(quick)
    env = dict(os.environ, BENCH_PICLOUD_PORT=str(PORT))
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), within_s)
    except (TimeoutError, asyncio.CancelledError):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        await asyncio.sleep(3)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise
    return _result(argv, proc.returncode, out.decode(errors="replace"))


def _result(argv: list[str], rc: int | None, text: str) -> dict[str, Any]:
    m = re.search(r"table: (\S+)", text)
    result: dict[str, Any] = {"command": " ".join(_quote(a) for a in argv), "rc": rc}
    if m and Path(m.group(1)).exists():
        result["table"] = Path(m.group(1)).read_text()
        result["results_dir"] = str(Path(m.group(1)).parent)
    else:
        result["error"] = "the harness printed no table; last lines:\n" + "\n".join(
            text.splitlines()[-15:]
        )
    result["versions"] = next(
        (line for line in text.splitlines() if line.startswith("versions:")), ""
    )
    return result


def _quote(arg: str) -> str:
    return f"'{arg}'" if " " in arg else arg
