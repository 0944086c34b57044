"""`picloud serve` as a real subprocess on a free loopback port, for process-level tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

__all__ = ["ROOT", "ServeProcess", "cli", "clean_env", "free_port", "serve"]

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The environment without any inherited PICLOUD_* setting, and no /etc config file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICLOUD_")}
    env.pop("STATE_DIRECTORY", None)
    env.pop("NOTIFY_SOCKET", None)
    config = tmp / "picloud.toml"
    config.touch()
    env.update(PICLOUD_CONFIG=str(config), PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


class ServeProcess:
    """A started `picloud serve`; its output goes to files read after it stops."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, out: Path, err: Path) -> None:
        self.proc = proc
        self.url = url
        self.out_path = out
        self.err_path = err

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"picloud serve exited {self.proc.returncode}: {self.stderr}")
            with contextlib.suppress(OSError, urllib.error.URLError):
                with urllib.request.urlopen(f"{self.url}/version", timeout=2) as resp:
                    if resp.status == 200:
                        return
            time.sleep(0.1)
        raise AssertionError(f"picloud serve did not listen in {START_TIMEOUT_S}s: {self.stderr}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> float:
        """Signals it and waits; how long it took to exit (kills it past `timeout`)."""
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError(f"picloud serve ignored signal {sig} for {timeout}s") from None
        return time.monotonic() - started


@contextlib.contextmanager
def serve(tmp: Path, **env: str) -> Iterator[ServeProcess]:
    """Runs `python -m picloud serve` until the block ends."""
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    full = clean_env(
        tmp, PICLOUD_BIND=f"127.0.0.1:{port}", PICLOUD_STATE_DIR=str(tmp / "state"), **env
    )
    out, err = tmp / f"serve-{port}.out", tmp / f"serve-{port}.err"
    with out.open("wb") as fo, err.open("wb") as fe:
        proc = subprocess.Popen(
            [sys.executable, "-m", "picloud", "serve"], env=full, cwd=tmp, stdout=fo, stderr=fe
        )
    process = ServeProcess(proc, f"http://127.0.0.1:{port}", out, err)
    try:
        process.wait_listening()
        yield process
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def cli(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """`python -m picloud ARGS`, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "picloud", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
