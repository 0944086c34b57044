"""The worker: a forked child of the zygote that sandboxes itself, then runs jobs of one app.

A worker serves one app for life. It caches each script version it has run
(the module namespace, after its top-level code ran once: Lambda's "init"),
and answers one job at a time over its channel.
"""

from __future__ import annotations

import builtins
import linecache
import math
import os
import resource
import signal
import socket
import sys
import time
import traceback
from typing import Any, NoReturn

import msgspec

from picloud.affinity import ANY_CPU, away_from, run_on
from picloud.executor.preload import LEARNABLE
from picloud.executor.sandbox import Sandbox
from picloud.sdk import _channel, kv
from picloud.sdk.log import capture, log
from picloud.sdk.response import BadReturn, Response, to_http

__all__ = ["RESULT_MAX", "child_main", "spare_main"]

RESULT_MAX = 4 * 1024 * 1024  # the largest response body a script may return
MiB = 1024 * 1024
HOME_CPU_S = 0.01  # CPU time a run may use on the event loop's CPU (picloud.affinity)...
HOME_MIN_CALLS = 10  # ...unless it made this many SDK calls in that time: then it stays
ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "TZ": "UTC", "HOME": "/nonexistent"}


def child_main(chan_fd: int, spec: dict[str, Any], sandbox: Sandbox) -> NoReturn:
    """Entered right after fork; never returns."""
    code = 0
    try:
        _detach(chan_fd, sandbox)
        sandbox.apply(spec.get("uid"), spec["limits"])
        _serve(socket.socket(fileno=chan_fd), spec)
    except BaseException:  # the channel's EOF tells the daemon; nothing else can be reported
        code = 70
    os._exit(code)


def spare_main(chan_fd: int, assign_fd: int, sandbox: Sandbox) -> NoReturn:
    """A spare forked ahead of demand, not yet of any app; never returns.

    It does the app-independent work now (session, fds, environment, first-touch
    page faults), then blocks until the zygote assigns it an app (uid + limits)
    through `assign_fd`; only then does it drop into the sandbox and serve. An EOF
    instead (the zygote went away) ends it.
    """
    code = 0
    try:
        _detach(chan_fd, sandbox, assign_fd)
        _warm()
        # A length-prefixed message, not "read to EOF": a spare forked after this one holds a
        # copy of the pipe's write end until it has closed its inherited fds.
        head = os.read(assign_fd, 4)
        data = os.read(assign_fd, int.from_bytes(head, "big")) if len(head) == 4 else b""
        os.close(assign_fd)
        if data:
            spec = msgspec.msgpack.decode(data)
            sandbox.apply(spec.get("uid"), spec["limits"])
            _serve(socket.socket(fileno=chan_fd), spec)
    except BaseException:  # the channel's EOF tells the daemon; nothing else can be reported
        code = 70
    os._exit(code)


def _warm() -> None:
    """Touch what the first job touches, so its copy-on-write faults happen before it."""
    frame = {"t": "result", "status": "ok", "http": [200, {}, b""], "log": ""}
    msgspec.msgpack.decode(msgspec.msgpack.encode(frame))
    namespace: dict[str, Any] = {"__builtins__": builtins}
    exec(compile("def handle(ctx):\n    return {'ok': 1}\n", "<warm>", "exec"), namespace)  # noqa: S102
    to_http(namespace["handle"]({}))
    capture.reset(1024)
    traceback.format_exception(ValueError, ValueError("warm"), None)


def _detach(chan_fd: int, sandbox: Sandbox, *extra: int) -> None:
    """New session, stdio on /dev/null, every inherited fd closed but the channel."""
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    os.setsid()
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    keep = sorted({0, 1, 2, chan_fd, *extra, *sandbox.keep_fds})
    low = 0
    for fd in keep:
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)
    os.environ.clear()
    os.environ.update(ENV)
    time.tzset()


def _serve(sock: socket.socket, spec: dict[str, Any]) -> None:
    chan = _channel.Channel(sock)
    _channel.channel = chan
    sys.stdout = sys.stderr = capture
    limits = _Limits(int(spec["base_data"]))
    cache: dict[tuple[str, int, int], dict[str, Any]] = {}
    known = [name for name in LEARNABLE if name in sys.modules]  # the zygote's already
    while True:
        try:
            frame = chan.recv()
        except _channel.ChannelClosed:
            return
        if frame.get("t") != "job":
            return
        result = _run(frame, cache, limits)
        limits.done()
        if len(known) < len(LEARNABLE):
            learned = [name for name in LEARNABLE if name in sys.modules and name not in known]
            if learned:
                result["learned"] = learned  # the daemon has the zygote import them
                known += learned
        chan.send(result)
        if result.get("recycle"):
            return


class _Limits:
    """Per-job limits in a warm worker, set only when they change (each is a syscall)."""

    def __init__(self, base_data: int) -> None:
        self.base_data = base_data
        self.memory_mb = -1
        self.cpu_soft = 0.0
        # CPU time used when the last run ended: a run's CPU is counted from there (the
        # idle wait in between costs none), which saves a getrusage() per run.
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu_mark = usage.ru_utime + usage.ru_stime
        # Where this worker was asked to run (picloud.affinity). It starts where the zygote
        # runs, on any allowed CPU; with co-location off, frames never move it.
        self.cpu = ANY_CPU
        self.calls_at = 0
        signal.signal(signal.SIGPROF, self._leave_home)

    def apply(self, frame: dict[str, Any], cpu_used: float) -> None:
        memory_mb = int(frame["memory_mb"])
        if memory_mb != self.memory_mb:
            hard = resource.getrlimit(resource.RLIMIT_DATA)[1]
            data = self.base_data + memory_mb * MiB
            if hard != resource.RLIM_INFINITY:
                data = min(data, hard)
            resource.setrlimit(resource.RLIMIT_DATA, (data, hard))
            self.memory_mb = memory_mb
        # The CPU time this run may still use: its timeout, plus up to 3 s of slack so the
        # limit moves once every few seconds of CPU rather than on every run.
        budget = frame["timeout_ms"] / 1000
        left = self.cpu_soft - cpu_used
        if not budget + 1 <= left <= budget + 4:
            self.cpu_soft = math.ceil(cpu_used + budget + 2)
            resource.setrlimit(resource.RLIMIT_CPU, (int(self.cpu_soft), resource.RLIM_INFINITY))
        cpu = frame.get("cpu", ANY_CPU)
        if cpu != self.cpu:
            run_on(cpu)
            self.cpu = cpu
        if cpu >= 0:
            # Sent to the event loop's CPU because it ran alone: if the run turns out to be
            # CPU-bound, it leaves that CPU after HOME_CPU_S of CPU time.
            self.calls_at = _channel.calls()
            signal.setitimer(signal.ITIMER_PROF, HOME_CPU_S)

    def done(self) -> None:
        if self.cpu >= 0:
            signal.setitimer(signal.ITIMER_PROF, 0)

    def _leave_home(self, signum: int, frame: object) -> None:
        if self.cpu < 0:
            return
        calls, self.calls_at = _channel.calls() - self.calls_at, _channel.calls()
        if calls >= HOME_MIN_CALLS:
            # Busy with SDK calls, each a hand-off to the loop: the case co-location is for.
            signal.setitimer(signal.ITIMER_PROF, HOME_CPU_S)
            return
        self.cpu = away_from(self.cpu)
        run_on(self.cpu)


def _load(frame: dict[str, Any], cache: dict[tuple[str, int, int], dict[str, Any]]) -> Any:
    """The script's `handle`, running the module's top level once per version per worker."""
    key = (frame["script"], frame["version"], frame.get("h", 0))
    namespace = cache.get(key)
    if namespace is None:
        source = frame.get("source")
        if not isinstance(source, str):
            raise RuntimeError("the daemon sent no source for a script this worker has not run")
        filename = f"<script {key[0]} v{key[1]}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        namespace = {
            "__name__": "__main__",
            "__builtins__": builtins,
            "kv": kv,
            "log": log,
            "Response": Response,
        }
        exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - running it is the job
        cache[key] = namespace
    handle = namespace.get("handle")
    if not callable(handle):
        raise TypeError("the script has no handle(ctx) function")
    return handle


def _run(
    frame: dict[str, Any], cache: dict[tuple[str, int, int], dict[str, Any]], limits: _Limits
) -> dict[str, Any]:
    capture.reset(int(frame.get("log_cap", 65536)))
    cpu_before = limits.cpu_mark
    limits.apply(frame, cpu_before)
    result: dict[str, Any] = {"t": "result", "status": "ok", "error": None}
    try:
        handle = _load(frame, cache)
        status, headers, body = to_http(handle(frame["ctx"]))
        if len(body) > RESULT_MAX:
            result.update(status="resource_limit", error=f"response exceeds {RESULT_MAX} bytes")
        else:
            result["http"] = [status, headers, body]
    except MemoryError:
        result.update(status="resource_limit", error="memory limit exceeded", recycle=True)
    except SystemExit as exc:
        result.update(status="script_error", error=f"sys.exit({exc.code!r}) called by the script")
    except BadReturn as exc:
        result.update(status="script_error", error=str(exc))
    except _channel.ChannelClosed:
        raise
    except BaseException as exc:
        capture.write(_traceback(exc))
        result.update(status="script_error", error=_one_line(exc))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    limits.cpu_mark = usage.ru_utime + usage.ru_stime
    result["cpu_ms"] = (limits.cpu_mark - cpu_before) * 1000
    result["maxrss_kb"] = usage.ru_maxrss
    result["loaded"] = (frame["script"], frame["version"], frame.get("h", 0)) in cache
    result["log"] = capture.getvalue()
    return result


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".splitlines()
    line = text[0][:500] if text else type(exc).__name__
    # A lone surrogate in the message cannot travel as UTF-8 (the frame would not encode).
    return line.encode("utf-8", "backslashreplace").decode("utf-8")


def _traceback(exc: BaseException) -> str:
    """The traceback from the script's own frames on (the worker's frames are noise)."""
    tb = exc.__traceback__
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<script "):
        tb = tb.tb_next
    try:
        return "".join(traceback.format_exception(type(exc), exc, tb))
    except Exception:
        return f"{type(exc).__name__}\n"
