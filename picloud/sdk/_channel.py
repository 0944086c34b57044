"""The script side of the channel: length-prefixed msgpack frames over one blocking socket."""

from __future__ import annotations

import builtins
import select
import socket
import struct
from typing import Any

import msgspec

__all__ = ["HEADER", "ChannelClosed", "Channel", "call", "calls", "channel"]

HEADER = struct.Struct(">I")
# Frames the daemon sends a worker (a job: ctx + source) stay well under this.
MAX_INBOUND = 64 * 1024 * 1024  # the daemon is trusted; this only stops a runaway frame
# Exception types a reply may name; anything else becomes RuntimeError in the script.
_RAISABLE = frozenset(
    {
        "ValueError",
        "TypeError",
        "KeyError",
        "LookupError",
        "RuntimeError",
        "PermissionError",
        "OverflowError",
        "TimeoutError",
    }
)


class ChannelClosed(Exception):
    """The daemon closed the channel (or sent something that is not a frame)."""


class Channel:
    """One blocking socket to the daemon; owned by the worker process."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._enc = msgspec.msgpack.Encoder()
        self._dec = msgspec.msgpack.Decoder()
        self._next_id = 0
        self._buf = bytearray()
        # Wait in poll() for input, then read: a task blocked in recv() on a unix socket is
        # also woken whenever the daemon reads what this side sent (the kernel's write-space
        # wake-up shares the socket's wait queue), a wasted pair of context switches per
        # frame; poll() waits filter that wake-up out by its event mask.
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN)

    def send(self, frame: dict[str, Any]) -> None:
        payload = self._enc.encode(frame)
        self.sock.sendall(HEADER.pack(len(payload)) + payload)

    def recv(self) -> dict[str, Any]:
        if not self._buf:
            # The usual case: nothing buffered, and the reply arrives in one piece.
            self._poll.poll()
            data = self.sock.recv(65536)
            if len(data) >= HEADER.size and HEADER.unpack_from(data)[0] == len(data) - HEADER.size:
                return self._checked(self._dec.decode(memoryview(data)[HEADER.size :]))
            if not data:
                raise ChannelClosed("end of channel")
            self._buf += data
        self._fill(HEADER.size)
        (size,) = HEADER.unpack_from(self._buf)
        if size > MAX_INBOUND:
            raise ChannelClosed(f"frame of {size} bytes")
        end = HEADER.size + size
        self._fill(end)
        frame = self._dec.decode(memoryview(self._buf)[HEADER.size : end])
        del self._buf[:end]
        return self._checked(frame)

    @staticmethod
    def _checked(frame: Any) -> dict[str, Any]:
        if not isinstance(frame, dict):
            raise ChannelClosed("frame is not a map")
        return frame

    def _fill(self, n: int) -> None:
        """Read until `n` bytes are buffered."""
        while len(self._buf) < n:
            self._poll.poll()
            chunk = self.sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                raise ChannelClosed("end of channel")
            self._buf += chunk

    def call(self, op: str, args: dict[str, Any]) -> Any:
        """One SDK operation, answered by the daemon's broker; raises what the broker says."""
        self._next_id = call_id = self._next_id + 1
        self.send({"t": "call", "id": call_id, "op": op, "args": args})
        reply = self.recv()
        if reply.get("id") != call_id or reply.get("t") != "reply":
            raise ChannelClosed("unexpected frame while waiting for a reply")
        if "err" in reply:
            err = reply["err"] if isinstance(reply["err"], dict) else {}
            name = str(err.get("type", "RuntimeError"))
            exc_type = getattr(builtins, name) if name in _RAISABLE else RuntimeError
            raise exc_type(str(err.get("message", "SDK call failed")))
        return reply.get("ok")


channel: Channel | None = None  # set by the worker once it is sandboxed


def calls() -> int:
    """SDK calls made so far in this worker (the worker's CPU placement reads it)."""
    return channel._next_id if channel is not None else 0


def call(op: str, args: dict[str, Any]) -> Any:
    """Run an SDK operation in the daemon (only inside a PiCloud worker)."""
    if channel is None:
        raise RuntimeError("the PiCloud SDK is only available inside a running script")
    return channel.call(op, args)
