"""Server processes for the benchmarks: start, stop, and measure their process trees."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

__all__ = [
    "Server",
    "cpu_seconds",
    "free_port",
    "io_bytes",
    "kill_all",
    "start_server",
    "tree",
    "wait_http",
]

_started: list[subprocess.Popen[bytes]] = []


@dataclass
class Server:
    """A server under test: its process (own process group) and its base URL."""

    name: str
    proc: subprocess.Popen[bytes]
    base: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 5.0) -> None:
        _stop(self.proc, grace)

    def kill(self) -> None:
        """SIGKILL the whole group at once (a crash, for durability checks)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        if self.proc in _started:
            _started.remove(self.proc)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    name: str, argv: list[str], env: dict[str, str], port: int, log_path: Path
) -> Server:
    """Start argv in its own session (so the group can be killed), logging to log_path."""
    full_env = dict(os.environ)
    full_env.update(env)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _started.append(proc)
    return Server(name, proc, f"http://127.0.0.1:{port}", log_path)


def _stop(proc: subprocess.Popen[bytes], grace: float) -> None:
    if proc in _started:
        _started.remove(proc)
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    # Whatever is left in the group (workers, a stuck zygote) goes now.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(2)


def kill_all() -> None:
    """Stop every server this process started (atexit and error paths)."""
    for proc in list(_started):
        _stop(proc, 3.0)


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def cpu_seconds(pid: int) -> float:
    """user+sys CPU of the tree, including children it has reaped."""
    total = 0.0
    for p in tree(pid):
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def io_bytes(pid: int) -> tuple[int, int]:
    """(write_bytes, wchar) from /proc/<pid>/io: bytes sent to storage, bytes written."""
    fields: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = int(value)
    return fields.get("write_bytes", 0), fields.get("wchar", 0)


async def wait_http(url: str, within_s: float, proc: subprocess.Popen[bytes]) -> float:
    """Poll url until it answers 200; returns the seconds it took."""
    import aiohttp

    t0 = time.monotonic()
    async with aiohttp.ClientSession() as http:
        while time.monotonic() - t0 < within_s:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with code {proc.returncode}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(url) as resp:
                    if resp.status == 200:
                        return time.monotonic() - t0
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} not ready after {within_s:.0f}s")
