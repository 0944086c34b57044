"""Giving up privileges once the sandbox zygote runs: root to the service user, or caps to none.

Two ways the daemon can be started with more than it needs:
- as root (`sudo picloud serve`, or a unit without `User=`): after the zygote has
  started, hand the state directory to `service_user` and switch to it for good;
- as `picloud` with ambient capabilities (systemd/picloud.service): the zygote
  inherited them; the daemon clears its own.
Either way the store opens and secrets are read only afterwards (see app.py's order).
"""

from __future__ import annotations

import logging
import os
import pwd
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from picloud.state import SETTINGS

__all__ = [
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SYS_ADMIN",
    "capabilities",
    "clear_capabilities",
    "drop_root",
    "privileges_ctx",
]

log = logging.getLogger("picloud.privileges")

CAP_KILL = 5
CAP_SETGID = 6
CAP_SETUID = 7
CAP_SYS_ADMIN = 21
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_CAPABILITY_VERSION_3 = 0x20080522


async def privileges_ctx(app: web.Application) -> AsyncIterator[None]:
    """Runs right after the zygote has started and before the store opens."""
    settings = app[SETTINGS]
    if os.geteuid() == 0 and not settings.service_user:
        log.warning("privileges: running as root (service_user is empty)")
    elif os.geteuid() == 0:
        log.info("privileges: %s", drop_root(settings.service_user, settings.state_dir))
    elif capabilities("CapPrm"):
        clear_capabilities()
        log.info("privileges: running as uid %d; capabilities cleared", os.geteuid())
    else:
        log.info("privileges: running as uid %d without capabilities", os.geteuid())
    yield


def capabilities(field: str = "CapEff", pid: int | str = "self") -> int:
    """The capability mask `field` (CapEff, CapPrm, CapAmb, CapBnd) of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == field:
            return int(value.strip(), 16)
    return 0


def clear_capabilities() -> None:
    """Empty the ambient, effective, permitted and inheritable sets of this thread.

    capset() is per thread: call it before starting threads (the daemon does; a
    forked sandbox child is single-threaded). NoNewPrivileges keeps them gone.
    """
    import ctypes

    class _CapHeader(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class _CapData(ctypes.Structure):
        _fields_ = [
            ("effective", ctypes.c_uint32),
            ("permitted", ctypes.c_uint32),
            ("inheritable", ctypes.c_uint32),
        ]

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0:
        _raise_errno("prctl(PR_CAP_AMBIENT_CLEAR_ALL)")
    header = _CapHeader(_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if libc.capset(ctypes.byref(header), data) != 0:
        _raise_errno("capset")
    if threading.active_count() > 1:
        # Threads started earlier keep their own sets; say so rather than pretend.
        log.warning(
            "privileges: %d threads were running; only this one lost its capabilities",
            threading.active_count() - 1,
        )


def drop_root(user: str, state_dir: Path) -> str:
    """Switch this process (all threads: glibc broadcasts set*id) to `user`; one line back."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        log.warning("privileges: no user %r; the daemon keeps running as root", user)
        return f"still root (no user {user!r})"
    _hand_over(state_dir, entry.pw_uid, entry.pw_gid)
    os.initgroups(entry.pw_name, entry.pw_gid)  # e.g. gpio/i2c, if the admin added them
    os.setresgid(entry.pw_gid, entry.pw_gid, entry.pw_gid)
    os.setresuid(entry.pw_uid, entry.pw_uid, entry.pw_uid)
    if os.getresuid() != (entry.pw_uid,) * 3 or capabilities("CapPrm"):
        raise RuntimeError(f"could not drop root to {user}")  # never run on half-dropped
    return f"switched from root to {user} (uid {entry.pw_uid})"


def _hand_over(state_dir: Path, uid: int, gid: int) -> None:
    """Make the state directory and everything in it belong to uid:gid (files a root run left).

    Without CAP_CHOWN (the systemd unit does not grant it) a file that needs it is named
    in a warning instead: the daemon then fails on that file with a clear error.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    top = state_dir.stat()
    stuck: list[str] = []
    if top.st_uid != uid and not (top.st_gid == gid and top.st_mode & 0o070 == 0o070):
        _chown(str(state_dir), uid, gid, stuck)
    for root, dirs, files in os.walk(state_dir):
        for name in dirs + files:
            path = os.path.join(root, name)
            if os.lstat(path).st_uid != uid:
                _chown(path, uid, gid, stuck)
    if stuck:
        log.warning(
            "privileges: cannot hand %s to uid %d; run: chown -R %d:%d %s",
            ", ".join(stuck[:5]),
            uid,
            uid,
            gid,
            state_dir,
        )


def _chown(path: str, uid: int, gid: int, stuck: list[str]) -> None:
    try:
        os.lchown(path, uid, gid)
    except PermissionError:
        stuck.append(path)


def _raise_errno(what: str) -> None:
    import ctypes

    err = ctypes.get_errno()
    raise OSError(err, f"{what}: {os.strerror(err)}")
