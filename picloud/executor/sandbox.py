"""Sandbox layers: built once in the zygote (Landlock, seccomp BPF, namespaces), applied per child.

Stdlib + ctypes only at import time (the zygote imports this); pyseccomp is
imported only to compile the filter once, in a forked child that takes it away
with it. Every layer reports whether it is on, so a missing one degrades loudly
(`Layers`), never silently.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import sys
import sysconfig
from pathlib import Path
from typing import Any

__all__ = ["Layers", "Sandbox", "landlock_abi"]

Layers = dict[str, Any]

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.prctl.argtypes = [
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_void_p,
    ctypes.c_ulong,
    ctypes.c_ulong,
]

# Landlock (the syscall numbers are the same on every architecture).
_SYS_LL_CREATE, _SYS_LL_ADD_RULE, _SYS_LL_RESTRICT = 444, 445, 446
_LL_CREATE_VERSION = 1
_LL_RULE_PATH_BENEATH = 1
_LL_READ = 1 | 4 | 8  # EXECUTE | READ_FILE | READ_DIR
_LL_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
# prctl / seccomp
_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 22, 2
# unshare / mount
_CLONE_NEWNS, _CLONE_NEWUTS, _CLONE_NEWIPC, _CLONE_NEWNET = (
    0x20000,
    0x4000000,
    0x8000000,
    0x40000000,
)
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_BIND, _MS_REC, _MS_PRIVATE = 4096, 16384, 1 << 18


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def _syscall(*args: int | ctypes._Pointer[Any] | None) -> int:
    return int(_libc.syscall(*args))


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when it has none."""
    result = _syscall(_SYS_LL_CREATE, None, 0, _LL_CREATE_VERSION)
    return max(result, 0)


def _oserror(what: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")


def python_paths() -> list[str]:
    """Directories a script may read: the Python installation and PiCloud's own package."""
    import msgspec

    names = ("stdlib", "platstdlib", "purelib", "platlib")
    paths = {sysconfig.get_paths()[n] for n in names}
    paths |= {sys.base_prefix + "/lib", str(Path(__file__).resolve().parents[1])}
    paths.add(str(Path(msgspec.__file__).parent))
    paths |= {"/usr/lib", "/lib", "/usr/lib64", "/lib64", "/usr/share/zoneinfo"}
    return sorted(p for p in paths if os.path.isdir(p))


def _beneath(path: str, directory: str) -> bool:
    return os.path.commonpath([os.path.realpath(path), os.path.realpath(directory)]) == (
        os.path.realpath(directory)
    )


class Sandbox:
    """What the zygote prepared once; `apply()` runs in each forked child."""

    def __init__(self, mode: str, state_dir: str) -> None:
        self.mode = mode
        self.state_dir = state_dir
        self.layers: Layers = {"mode": mode}
        self._landlock_fd = -1
        self._fprog: _SockFprog | None = None
        self._filter_buf: Any = None
        self.uid_ok = False

    # ---- once, in the zygote

    def prepare(self) -> None:
        enabled = self.mode != "off"
        root = os.geteuid() == 0
        # The filter first: building it imports pyseccomp, which must still be visible.
        self.layers["seccomp"] = enabled and self._build_seccomp()
        self.layers["namespaces"] = enabled and root and self._unshare()
        self.layers["mounts"] = bool(self.layers["namespaces"]) and self._harden_mounts()
        self.uid_ok = enabled and root
        self.layers["uid"] = self.uid_ok
        self.layers["no_new_privs"] = enabled
        abi = landlock_abi() if enabled else 0
        self.layers["landlock_abi"] = abi
        self.layers["landlock"] = abi > 0 and self._build_landlock(abi)
        self.layers["rlimits"] = True
        self.layers["fd_close"] = True
        self.layers["env"] = True

    def missing(self) -> list[str]:
        want = ["uid", "no_new_privs", "seccomp"]
        have_fs = self.layers.get("landlock") or self.layers.get("mounts")
        gone = [name for name in want if not self.layers.get(name)]
        return gone if have_fs else [*gone, "landlock|mounts"]

    def _unshare(self) -> bool:
        flags = _CLONE_NEWNS | _CLONE_NEWNET | _CLONE_NEWIPC | _CLONE_NEWUTS
        if _libc.unshare(flags) != 0:
            return False
        return True

    def _mount(self, src: str, target: str, fstype: str | None, flags: int, data: str) -> None:
        rc = _libc.mount(
            src.encode(), target.encode(), fstype.encode() if fstype else None, flags, data.encode()
        )
        if rc != 0:
            raise _oserror(f"mount {target}")

    def _harden_mounts(self) -> bool:
        """Column E of the sandbox study: empty read-only tmpfs over writable and private places."""
        needed = python_paths()
        skipped = []
        try:
            self._mount("none", "/", None, _MS_REC | _MS_PRIVATE, "")
            self._expose_python()
            flags = _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
            for target in ("/tmp", "/var/tmp", "/dev/shm", "/run", self.state_dir):
                if not os.path.isdir(target):
                    continue
                if any(_beneath(path, target) for path in needed):
                    # e.g. a checkout in /tmp: masking it would hide the Python scripts run
                    # with. Landlock (where present) still keeps scripts out of the rest.
                    skipped.append(target)
                    continue
                self._mount("tmpfs", target, "tmpfs", flags, "size=4k,mode=755")
            self._mount("proc", "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, "hidepid=2")
        except OSError as exc:
            self.layers["mounts_error"] = str(exc)
            return False
        if skipped:
            self.layers["mounts_skipped"] = ", ".join(skipped)
        return True

    def _expose_python(self) -> None:
        """Workers run as another uid: make the Python install reachable if a parent is private.

        (e.g. pyenv under /root, mode 0700). The private parent is covered by an empty
        tmpfs and only the needed subtree is bound back, so the rest stays hidden.
        """
        for path in python_paths():
            parts = Path(path).parts
            for depth in range(2, len(parts)):
                parent = Path(*parts[:depth])
                if os.stat(parent).st_mode & 0o001:
                    continue
                child = Path(*parts[: depth + 1])
                fd = os.open(child, os.O_PATH | os.O_DIRECTORY)
                try:
                    self._mount("tmpfs", str(parent), "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=711")
                    os.mkdir(child, 0o755)
                    self._mount(f"/proc/self/fd/{fd}", str(child), None, _MS_BIND | _MS_REC, "")
                finally:
                    os.close(fd)
                break

    def _build_landlock(self, abi: int) -> bool:
        fs = _LL_FS_BY_ABI[max(k for k in _LL_FS_BY_ABI if k <= abi)]
        attr = _RulesetAttr(fs, 3 if abi >= 4 else 0, 3 if abi >= 6 else 0)
        size = 24 if abi >= 6 else 16 if abi >= 4 else 8
        fd = _syscall(_SYS_LL_CREATE, ctypes.pointer(attr), size, 0)
        if fd < 0:
            self.layers["landlock_error"] = str(_oserror("landlock_create_ruleset"))
            return False
        for path in python_paths():
            pfd = os.open(path, os.O_PATH | os.O_DIRECTORY)
            rule = _PathBeneath(_LL_READ, pfd)
            rc = _syscall(_SYS_LL_ADD_RULE, fd, _LL_RULE_PATH_BENEATH, ctypes.pointer(rule), 0)
            os.close(pfd)
            if rc != 0:
                self.layers["landlock_error"] = str(_oserror(f"landlock_add_rule {path}"))
                os.close(fd)
                return False
        self._landlock_fd = fd
        self.layers["landlock_net"] = abi >= 4
        self.layers["landlock_scope"] = abi >= 6
        return True

    def _build_seccomp(self) -> bool:
        try:
            program = _compile_in_child()
        except (OSError, RuntimeError) as exc:
            self.layers["seccomp_error"] = str(exc)
            return False
        count = len(program) // 8
        buf = (_SockFilter * count).from_buffer_copy(program)
        self._filter_buf = buf
        self._fprog = _SockFprog(count, ctypes.cast(buf, ctypes.POINTER(_SockFilter)))
        return True

    @property
    def keep_fds(self) -> list[int]:
        return [self._landlock_fd] if self._landlock_fd >= 0 else []

    # ---- per child, after fork

    def apply(self, uid: int | None, limits: dict[str, int]) -> None:
        """Drop the child into the sandbox; raises OSError when a layer that is on fails."""
        _set_limits(limits)
        if self.uid_ok and uid:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        # After the uid change: changing credentials clears the parent-death signal.
        _libc.prctl(_PR_SET_PDEATHSIG, 9, None, 0, 0)
        if self.mode == "off":
            return
        if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, None, 0, 0) != 0:
            raise _oserror("no_new_privs")
        if self._landlock_fd >= 0:
            if _syscall(_SYS_LL_RESTRICT, self._landlock_fd, 0) != 0:
                raise _oserror("landlock_restrict_self")
            os.close(self._landlock_fd)
        if self._fprog is not None:
            ptr = ctypes.addressof(self._fprog)
            if _libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ptr, 0, 0) != 0:
                raise _oserror("seccomp")


def _compile_in_child() -> bytes:
    """The seccomp BPF program, compiled with libseccomp by a forked child that then exits.

    pyseccomp and what it imports (ctypes.util, subprocess, shutil, tempfile, threading,
    bz2, lzma: ~1.5 MiB resident) would otherwise stay in the zygote for good, and in
    the page tables of every worker it forks; the program itself is a few hundred bytes.
    """
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        os.close(rfd)
        try:
            from picloud.executor.seccomp import compile_filter

            answer = b"\0" + compile_filter()
        except BaseException as exc:  # noqa: BLE001 - reported to the zygote, which logs it
            answer = b"\1" + (str(exc) or type(exc).__name__).encode(errors="replace")
        try:
            with open(wfd, "wb") as out:
                out.write(answer)
        finally:
            os._exit(0)
    os.close(wfd)
    with open(rfd, "rb") as answer_in:
        answer = answer_in.read()
    os.waitpid(pid, 0)
    if not answer:
        raise RuntimeError("the seccomp compiler exited without an answer")
    if answer[0] != 0:
        raise RuntimeError(answer[1:].decode())
    return answer[1:]


def _set_limits(limits: dict[str, int]) -> None:
    inf = resource.RLIM_INFINITY
    data = limits["data_bytes"]
    resource.setrlimit(resource.RLIMIT_DATA, (data, limits.get("data_hard_bytes", data)))
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.get("cpu_s", 60), inf))
    try:
        resource.setrlimit(resource.RLIMIT_NPROC, (limits["nproc"], limits["nproc"]))
    except (ValueError, OSError) as exc:  # only meaningful with a uid of its own
        if getattr(exc, "errno", errno.EPERM) != errno.EPERM:
            raise
