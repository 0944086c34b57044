"""The daemon's handle on the zygote: start it, ask for workers, kill them, hear of exits."""

from __future__ import annotations

import array
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

import picloud
from picloud.affinity import allowed_cpus
from picloud.executor.preload import learnable

__all__ = ["ExitInfo", "SpawnError", "ZygoteClient"]

log = logging.getLogger("picloud.executor")
_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder()
_START_TIMEOUT_S = 20.0
# The zygote's entry: a bare `picloud` package module stands in for picloud/__init__.py, so
# nothing that file imports now or later (it once looked the version up through
# importlib.metadata: megabytes) lands in a heap that every fork copies the page tables of.
_BOOT = (
    "import sys, types\n"
    "pkg = types.ModuleType('picloud')\n"
    "pkg.__path__ = [sys.argv[3]]\n"
    "sys.modules['picloud'] = pkg\n"
    "from picloud.executor.zygote import main\n"
    "sys.exit(main(sys.argv))\n"
)


class SpawnError(Exception):
    """The zygote could not fork a worker (or is gone)."""


@dataclasses.dataclass(frozen=True, slots=True)
class ExitInfo:
    pid: int
    status: int  # the raw wait status
    cpu_ms: float
    maxrss_kb: int
    lost: bool = False  # the zygote died with it: the real exit status is unknown

    @property
    def signal(self) -> int | None:
        return os.WTERMSIG(self.status) if os.WIFSIGNALED(self.status) else None

    def describe(self) -> str:
        sig = self.signal
        if sig is not None:
            return f"killed by signal {signal.Signals(sig).name}"
        return f"exit code {os.WEXITSTATUS(self.status)}"


class ZygoteClient:
    """One zygote process. `on_exit` hears of every worker exit; `on_death` of the zygote's."""

    def __init__(self, sandbox: str, state_dir: str) -> None:
        self._config = json.dumps(
            {"sandbox": sandbox, "state_dir": state_dir, "cpus": sorted(allowed_cpus())}
        )
        self.proc: asyncio.subprocess.Process | None = None
        self.sock: socket.socket | None = None
        self.layers: dict[str, Any] = {}
        self.base_data = 0
        self.on_exit: Callable[[ExitInfo], None] = lambda info: None
        self.on_death: Callable[[], None] = lambda: None
        self._pending: dict[int, asyncio.Future[tuple[int, socket.socket]]] = {}
        self._ready: asyncio.Future[None] | None = None
        self._next = 0
        self.alive = False
        # Modules scripts turned out to use (picloud.executor.preload): asked of every
        # zygote this client starts, so a restarted one has them too.
        self.learned: set[str] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",
                "-c",
                _BOOT,
                str(theirs.fileno()),
                self._config,
                str(Path(picloud.__file__).parent),
                pass_fds=(theirs.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                env=env,
            )
        finally:
            theirs.close()
        ours.setblocking(False)
        self.sock = ours
        self._ready = loop.create_future()
        loop.add_reader(ours.fileno(), self._readable)
        self.alive = True
        async with asyncio.timeout(_START_TIMEOUT_S):
            await self._ready
        if self.learned:
            self._send({"op": "preload", "modules": sorted(self.learned)})

    async def spawn(self, uid: int | None, limits: dict[str, int]) -> tuple[int, socket.socket]:
        """Fork a worker; (pid, the daemon's end of its channel)."""
        if not self.alive or self.sock is None:
            raise SpawnError("the zygote is not running")
        self._next += 1
        req = self._next
        future: asyncio.Future[tuple[int, socket.socket]] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending[req] = future
        try:
            self.sock.send(_enc.encode({"op": "spawn", "req": req, "uid": uid, "limits": limits}))
            return await future
        except OSError as exc:
            raise SpawnError(f"the zygote is not answering: {exc}") from None
        finally:
            self._pending.pop(req, None)

    def kill(self, pid: int) -> None:
        self._send({"op": "kill", "pid": pid})

    def learn(self, names: object) -> None:
        """A worker's script imported these: have the zygote load them for later forks."""
        new = learnable(names, self.learned)
        if new:
            self.learned.update(new)
            log.info("executor: a script imported %s; the zygote loads it too", ", ".join(new))
            self._send({"op": "preload", "modules": new})

    def _send(self, msg: dict[str, Any]) -> None:
        if self.alive and self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.send(_enc.encode(msg))

    def _readable(self) -> None:
        assert self.sock is not None
        while True:
            try:
                data, anc, _flags, _addr = self.sock.recvmsg(65536, socket.CMSG_SPACE(16))
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data, anc = b"", []
            if not data:
                self._died()
                return
            fds = _fds(anc)
            try:
                self._dispatch(_dec.decode(data), fds)
            except (msgspec.DecodeError, KeyError, TypeError, ValueError):
                log.exception("executor: bad message from the zygote")
                for fd in fds:
                    os.close(fd)

    def _dispatch(self, msg: dict[str, Any], fds: list[int]) -> None:
        op = msg["op"]
        if op == "exit":
            self.on_exit(ExitInfo(msg["pid"], msg["status"], msg["cpu_ms"], msg["maxrss_kb"]))
        elif op in ("spawned", "spawn_failed"):
            future = self._pending.get(msg["req"])
            if op == "spawned" and fds:
                sock = socket.socket(fileno=fds[0])
                if future is None or future.done():
                    sock.close()  # the caller gave up; the worker sees EOF and exits
                else:
                    future.set_result((msg["pid"], sock))
            elif future is not None and not future.done():
                future.set_exception(SpawnError(msg.get("error", "spawn failed")))
        elif op == "preloaded":
            self.base_data = int(msg["base_data"])  # workers' memory limits count from here
        elif op == "ready" and self._ready is not None and not self._ready.done():
            self.layers = dict(msg["layers"])
            self.base_data = int(msg["base_data"])
            self._ready.set_result(None)

    def _died(self) -> None:
        if not self.alive:
            return
        self.alive = False
        if self.sock is not None:
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
        for future in self._pending.values():
            if not future.done():
                future.set_exception(SpawnError("the zygote died"))
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(SpawnError("the zygote exited during start-up"))
        self.on_death()

    async def stop(self) -> None:
        """Close the control socket (the zygote kills its workers and exits), then reap it."""
        if self.sock is not None:
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
        self.alive = False
        if self.proc is not None:
            try:
                async with asyncio.timeout(5.0):
                    await self.proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()


def _fds(anc: list[tuple[int, int, bytes]]) -> list[int]:
    fds: list[int] = []
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            arr = array.array("i")
            arr.frombytes(data[: len(data) - (len(data) % arr.itemsize)])
            fds.extend(arr)
    return fds
