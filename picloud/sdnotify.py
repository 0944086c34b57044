"""systemd integration: sd_notify messages, the watchdog interval, socket activation, journal.

Every call is a no-op off systemd. Importing this module takes NOTIFY_SOCKET,
WATCHDOG_*, and LISTEN_* out of the environment, so nothing the daemon starts
(the zygote, and so every script) ever inherits them; picloud.daemon imports it
before the app, and so before the zygote, exists.

Messages are sent by the small sender below, not by systemd-python's
`daemon.notify`: libsystemd reads NOTIFY_SOCKET from the environment on every
call, and the environment must not hold it. systemd-python is used, when
importable, for `JournalHandler`.
"""

from __future__ import annotations

import logging
import os
import socket
import sys

__all__ = [
    "extend_timeout",
    "journal_handler",
    "listen_socket",
    "migration_started",
    "notify",
    "ready",
    "status",
    "stopping",
    "under_systemd",
    "watchdog",
    "watchdog_interval",
]

_ENV = os.environ
_SOCKET = _ENV.pop("NOTIFY_SOCKET", None)
_WATCHDOG_USEC = _ENV.pop("WATCHDOG_USEC", None)
_WATCHDOG_PID = _ENV.pop("WATCHDOG_PID", None)
_LISTEN_FDS = _ENV.pop("LISTEN_FDS", None)
_LISTEN_PID = _ENV.pop("LISTEN_PID", None)
_ENV.pop("LISTEN_FDNAMES", None)
_LISTEN_FDS_START = 3
MIGRATION_ALLOWANCE_S = 60.0


def notify(message: str) -> bool:
    """Send one datagram to systemd; False (and nothing else) off systemd or on error."""
    if not _SOCKET or not _SOCKET.startswith(("/", "@")):
        return False
    address = "\0" + _SOCKET[1:] if _SOCKET.startswith("@") else _SOCKET
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.sendto(message.encode(), address)
        except OSError:
            return False
    return True


def ready(text: str = "serving") -> bool:
    return notify(f"READY=1\nSTATUS={_one_line(text)}")


def status(text: str) -> bool:
    return notify(f"STATUS={_one_line(text)}")


def stopping() -> bool:
    return notify("STOPPING=1\nSTATUS=stopping")


def watchdog() -> bool:
    return notify("WATCHDOG=1")


def extend_timeout(seconds: float) -> bool:
    """Ask systemd for `seconds` more before it gives up on start-up (long migrations)."""
    return notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")


def migration_started(number: int) -> None:
    """The store's on_migration callback: say so, and give this migration a minute more."""
    logging.getLogger("picloud").info("store: applying migration %04d", number)
    status(f"applying database migration {number:04d}")
    extend_timeout(MIGRATION_ALLOWANCE_S)


def watchdog_interval() -> float | None:
    """Seconds between pings (half of WatchdogSec), or None when no watchdog is asked for."""
    if not _WATCHDOG_USEC or (_WATCHDOG_PID and _WATCHDOG_PID != str(os.getpid())):
        return None
    try:
        usec = int(_WATCHDOG_USEC)
    except ValueError:
        return None
    return usec / 2_000_000 if usec > 0 else None


def listen_socket() -> socket.socket | None:
    """The first socket systemd passed in (picloud.socket), or None without socket activation."""
    if not _LISTEN_FDS or _LISTEN_PID != str(os.getpid()):
        return None
    if int(_LISTEN_FDS) < 1:
        return None
    sock = socket.socket(fileno=_LISTEN_FDS_START)
    sock.setblocking(False)
    os.set_inheritable(sock.fileno(), False)  # the zygote must never hold the LAN socket
    return sock


def under_systemd() -> bool:
    """Was this process started by systemd (a unit, not a shell)?"""
    return "INVOCATION_ID" in _ENV or _SOCKET is not None


def journal_handler() -> logging.Handler | None:
    """A JournalHandler when stderr goes to the journal and systemd-python is installed."""
    stream = _ENV.get("JOURNAL_STREAM", "")
    if not stream or not _stderr_is(stream):
        return None
    try:
        from systemd.journal import JournalHandler
    except ImportError:
        return None
    handler: logging.Handler = JournalHandler(SYSLOG_IDENTIFIER="picloud")
    return handler


def _stderr_is(stream: str) -> bool:
    """JOURNAL_STREAM is "dev:ino" of the journal stream; only trust it if stderr is that."""
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return stream == f"{st.st_dev}:{st.st_ino}"


def _one_line(text: str) -> str:
    return text.replace("\n", " ")[:200]
