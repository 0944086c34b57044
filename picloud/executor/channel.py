"""The daemon's end of a worker's channel: an asyncio Protocol over length-prefixed msgpack frames.

The app of a channel is fixed when the daemon creates it; nothing a frame says
changes it. Anything malformed (oversized, undecodable, out of turn) kills
that worker, never the daemon.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

import msgspec

__all__ = ["CLOSED", "MAX_INFLIGHT", "ChannelError", "WorkerChannel", "WorkerGone"]

log = logging.getLogger("picloud.executor")
_HEADER = 4
MAX_INFLIGHT = 4  # SDK calls are blocking in the script; more than this is abuse
_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder()


CLOSED = "the worker's channel closed"


class WorkerGone(Exception):
    """The worker's channel closed before it answered."""


class ChannelError(Exception):
    """The worker broke the protocol."""


class WorkerChannel(asyncio.Protocol):
    def __init__(
        self,
        app_id: str,
        pid: int,
        max_frame: int,
        on_call: Callable[[WorkerChannel, dict[str, Any]], None],
        on_fatal: Callable[[WorkerChannel, str], None],
    ) -> None:
        self.app_id = app_id
        self.pid = pid
        self.max_frame = max_frame
        self.depth = 0  # the running job's trigger depth
        self.inflight = 0
        self.closed = False
        self.error: str | None = None
        self._on_call = on_call
        self._on_fatal = on_fatal
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None
        self._result: asyncio.Future[dict[str, Any]] | None = None

    # ---- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        size = len(data) - _HEADER
        if (
            not buf
            and 0 <= size <= self.max_frame
            and int.from_bytes(data[:_HEADER], "big") == size
        ):
            # The usual case: exactly one whole frame (an SDK call waits for its reply).
            self._payload(memoryview(data)[_HEADER:])
            return
        buf += data
        while len(buf) >= _HEADER and not self.closed:
            size = int.from_bytes(buf[:_HEADER], "big")
            if size > self.max_frame:
                self.fatal(f"frame of {size} bytes exceeds the cap of {self.max_frame}")
                return
            end = _HEADER + size
            if len(buf) < end:
                return
            payload = bytes(buf[_HEADER:end])
            del buf[:end]
            self._payload(payload)

    def _payload(self, payload: bytes | memoryview) -> None:
        if self.closed:
            return
        try:
            frame = _dec.decode(payload)
        except (msgspec.DecodeError, RecursionError, ValueError):
            self.fatal("undecodable frame")
            return
        self._frame(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._buf.clear()
        result = self._result
        if result is not None and not result.done():
            result.set_exception(WorkerGone(self.error or CLOSED))

    # ---- frames

    def _frame(self, frame: Any) -> None:
        kind = frame.get("t") if isinstance(frame, dict) else None
        if kind == "result":
            result = self._result
            if result is None or result.done():
                self.fatal("a result frame without a job")
                return
            self._result = None
            result.set_result(frame)
        elif kind == "call":
            if self._result is None:
                self.fatal("an SDK call outside a job")
            elif self.inflight >= MAX_INFLIGHT:
                self.fatal("too many SDK calls in flight")
            else:
                self._on_call(self, frame)
        else:
            self.fatal(f"unknown frame kind {kind!r:.40}")

    def fatal(self, reason: str) -> None:
        """Protocol breach: log it, drop the channel, have the worker killed."""
        if self.closed:
            return
        log.warning("executor: worker %d of app %r: %s; killing it", self.pid, self.app_id, reason)
        self.error = f"protocol error: {reason}"
        self._on_fatal(self, reason)
        self.close()

    def send(self, frame: dict[str, Any]) -> None:
        if self._transport is not None and not self.closed:
            payload = _enc.encode(frame)
            self._transport.write(len(payload).to_bytes(_HEADER, "big") + payload)

    def start(self, frame: dict[str, Any], depth: int) -> asyncio.Future[dict[str, Any]]:
        """Send a job; the future gets its result frame (or WorkerGone)."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        if self.closed:
            future.set_exception(WorkerGone(self.error or CLOSED))
            return future
        self.depth = depth
        self._result = future
        self.send(frame)
        return future

    def close(self) -> None:
        if self._transport is not None:
            self._transport.abort()
        self.closed = True
