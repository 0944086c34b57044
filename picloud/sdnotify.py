"""systemd notifications (READY, STATUS, WATCHDOG, STOPPING): no-ops off systemd."""

from __future__ import annotations

import os
import socket

__all__ = ["notify", "ready", "status", "stopping", "watchdog_interval"]

_SOCKET = os.environ.pop("NOTIFY_SOCKET", None)  # popped: children must never inherit it


def notify(message: str) -> bool:
    if not _SOCKET:
        return False
    address = "\0" + _SOCKET[1:] if _SOCKET.startswith("@") else _SOCKET
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.sendto(message.encode(), address)
        except OSError:
            return False
    return True


def ready(text: str = "serving") -> bool:
    return notify(f"READY=1\nSTATUS={text}")


def status(text: str) -> bool:
    return notify(f"STATUS={text}")


def stopping() -> bool:
    return notify("STOPPING=1\nSTATUS=stopping")


def watchdog_interval() -> float | None:
    """Seconds between pings (half of WatchdogSec), or None when no watchdog is asked for."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000
