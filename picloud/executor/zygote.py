"""The zygote: a clean, single-threaded interpreter that forks sandboxed workers on request.

Run as `python -I -m picloud.executor.zygote CTL_FD CONFIG_JSON` by the daemon
before it opens the store or reads any secret, so nothing secret is in the heap
the workers inherit. It never imports aiohttp. Control messages (msgpack over
a SOCK_SEQPACKET socketpair):

  daemon -> zygote  {"op": "spawn", "req": n, "uid": u, "limits": {...}}
                    {"op": "kill", "pid": p}
                    {"op": "preload", "modules": [...]}
  zygote -> daemon  {"op": "ready", "layers": {...}, "base_data": bytes}
                    {"op": "spawned", "req": n, "pid": p}  + the channel fd (SCM_RIGHTS)
                    {"op": "spawn_failed", "req": n, "error": "..."}
                    {"op": "exit", "pid": p, "status": waitstatus, "cpu_ms": x, "maxrss_kb": k}
                    {"op": "preloaded", "modules": [...], "base_data": bytes}
"""

from __future__ import annotations

import array

# The utility modules scripts rely on, imported once so children inherit them (hashlib,
# hmac and secrets only once a script has used them: picloud.executor.preload).
import base64  # noqa: F401
import collections
import ctypes
import datetime  # noqa: F401
import gc
import importlib
import json
import math  # noqa: F401
import os
import random  # noqa: F401
import re  # noqa: F401
import selectors
import signal
import socket
import sys
import time
import traceback  # noqa: F401
import uuid  # noqa: F401
from typing import Any

import msgspec

import picloud.sdk  # noqa: F401
from picloud.affinity import ANY_CPU, allow, run_on
from picloud.executor import worker
from picloud.executor.preload import learnable
from picloud.executor.sandbox import Sandbox

__all__ = ["main"]

SPARES = 2  # generic spares kept forked: a cold start then costs no fork on its path
_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder()


def _vm_data() -> int:
    """This process's data segment (what RLIMIT_DATA counts), in bytes."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    return 64 * 1024 * 1024


class Zygote:
    def __init__(self, ctl: socket.socket, sandbox: Sandbox, base_data: int) -> None:
        self.ctl = ctl
        self.sandbox = sandbox
        self.base_data = base_data
        self.children: set[int] = set()
        # Forked ahead, not yet of any app: (pid, the daemon's channel end, the assign pipe).
        self.spares: collections.deque[tuple[int, socket.socket, int]] = collections.deque()
        self.refill_after = 0.0

    def send(self, msg: dict[str, Any], fds: list[int] | None = None) -> None:
        data = _enc.encode(msg)
        if fds:
            anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
            self.ctl.sendmsg([data], anc)
        else:
            self.ctl.send(data)

    def spawn(self, msg: dict[str, Any]) -> None:
        """A worker for the daemon: a spare assigned to the app if one is ready, else a fork."""
        req = msg.get("req")
        spec = {"uid": msg.get("uid"), "limits": msg["limits"], "base_data": self.base_data}
        if self.spares:
            pid, ours, assign = self.spares.popleft()
            # Answer the daemon first: waking the spare may let it run (sandboxing itself)
            # before we do; the daemon meanwhile attaches and sends the job.
            try:
                self.send({"op": "spawned", "req": req, "pid": pid}, [ours.fileno()])
            finally:
                ours.close()
                try:
                    data = _enc.encode(spec)  # well under PIPE_BUF: one atomic write
                    os.write(assign, len(data).to_bytes(4, "big") + data)
                finally:
                    os.close(assign)
            return
        else:
            try:
                ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            except OSError as exc:
                self.send({"op": "spawn_failed", "req": req, "error": str(exc)})
                return
            try:
                pid = os.fork()
            except OSError as exc:  # out of processes or memory: this spawn fails, not the zygote
                ours.close()
                theirs.close()
                self.send({"op": "spawn_failed", "req": req, "error": f"fork: {exc}"})
                return
            if pid == 0:
                worker.child_main(theirs.detach(), spec, self.sandbox)
            theirs.close()
            self.children.add(pid)
        try:
            self.send({"op": "spawned", "req": req, "pid": pid}, [ours.fileno()])
        finally:
            ours.close()

    def refill_one(self) -> None:
        """Fork one spare (called between requests: never on a spawn's critical path)."""
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            rfd, wfd = os.pipe()
            pid = os.fork()
        except OSError as exc:  # out of fds or processes: try again in a while, not in a loop
            print(f"picloud zygote: cannot fork a spare: {exc}", file=sys.stderr)
            self.refill_after = time.monotonic() + 5.0
            return
        if pid == 0:
            worker.spare_main(theirs.detach(), rfd, self.sandbox)
        theirs.close()
        os.close(rfd)
        self.children.add(pid)
        self.spares.append((pid, ours, wfd))

    def _drop_spare(self, pid: int) -> None:
        for spare in list(self.spares):
            if spare[0] == pid:
                self.spares.remove(spare)
                spare[1].close()
                os.close(spare[2])

    def kill(self, pid: int) -> None:
        if pid not in self.children:
            return  # already reaped: the pid may belong to someone else now
        for target in (-pid, pid):
            try:
                os.kill(target, signal.SIGKILL)
            except OSError:
                pass

    def reap(self) -> None:
        while self.children:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)
            self._drop_spare(pid)
            cpu = (usage.ru_utime + usage.ru_stime) * 1000
            exit_msg = {"op": "exit", "pid": pid, "status": status}
            self.send({**exit_msg, "cpu_ms": cpu, "maxrss_kb": usage.ru_maxrss})

    def shutdown(self) -> None:
        for pid in list(self.children):
            self.kill(pid)
        for pid in list(self.children):
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass

    def serve(self) -> None:
        rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wfd)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        sel = selectors.DefaultSelector()
        sel.register(self.ctl, selectors.EVENT_READ, "ctl")
        sel.register(rfd, selectors.EVENT_READ, "sig")
        while True:
            # Spares are forked only when nothing is waiting: one at a time, between requests.
            idle = len(self.spares) < SPARES and time.monotonic() >= self.refill_after
            events = sel.select(timeout=0 if idle else None)
            if not events and idle:
                self.refill_one()
                continue
            for key, _ in events:
                if key.data == "sig":
                    while True:
                        try:
                            if not os.read(rfd, 512):
                                break
                        except BlockingIOError:
                            break
                    self.reap()
                elif not self._handle():
                    self.shutdown()
                    return

    def preload(self, names: object) -> None:
        """Import modules scripts turned out to use (from picloud.executor.preload's list)."""
        done = []
        for name in learnable(names, sys.modules):
            try:
                importlib.import_module(name)
            except ImportError as exc:  # e.g. a Python built without OpenSSL
                print(f"picloud zygote: cannot preload {name}: {exc}", file=sys.stderr)
                continue
            done.append(name)
        if not done:
            return
        gc.collect()
        ctypes.CDLL(None).malloc_trim(0)  # as at start: free pages back before the freeze
        gc.freeze()
        self.base_data = _vm_data()
        # Spares forked before now lack the modules: replace them (a fork is ~1 ms).
        for pid, _, _ in list(self.spares):
            self.kill(pid)
            self._drop_spare(pid)
        self.send({"op": "preloaded", "modules": done, "base_data": self.base_data})

    def _handle(self) -> bool:
        data = self.ctl.recv(65536)
        if not data:
            return False
        msg = _dec.decode(data)
        if msg.get("op") == "spawn":
            self.spawn(msg)
        elif msg.get("op") == "kill":
            self.kill(int(msg["pid"]))
        elif msg.get("op") == "preload":
            self.preload(msg.get("modules"))
        return True


def main(argv: list[str]) -> int:
    ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG: die with the daemon
    # Ctrl-C reaches the whole process group; the daemon owns the zygote's lifetime.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ctl = socket.socket(fileno=int(argv[1]))
    config = json.loads(argv[2])
    # Started (or restarted) by a loop thread pinned to its home CPU: its forks may use
    # every CPU the daemon was given, no more.
    allow(config.get("cpus", ()))
    run_on(ANY_CPU)
    sandbox = Sandbox(config["sandbox"], config["state_dir"])
    sandbox.prepare()
    gc.collect()
    # Hand the allocator's free pages back before the heap is frozen and shared by forks.
    ctypes.CDLL(None).malloc_trim(0)
    base_data = _vm_data()
    gc.freeze()  # children then touch far fewer copy-on-write pages
    zygote = Zygote(ctl, sandbox, base_data)
    zygote.send({"op": "ready", "layers": sandbox.layers, "base_data": base_data})
    try:
        zygote.serve()
    except (OSError, msgspec.DecodeError, KeyError, ValueError) as exc:
        print(f"picloud zygote: {exc!r}", file=sys.stderr)
        zygote.shutdown()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
