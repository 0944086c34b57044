"""The seccomp filter of a worker, compiled once (libseccomp) into BPF that each child loads."""

from __future__ import annotations

import errno
import os

__all__ = ["BLOCKED", "compile_filter"]

_CLONE_THREAD = 0x10000
_TIOCSTI = 0x5412
# Refused with EPERM: new sockets, exec, processes, tracing, kernel attack surface.
BLOCKED = (
    "socket",
    "socketpair",
    "execve",
    "execveat",
    "fork",
    "vfork",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "process_madvise",
    "pidfd_getfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsmount",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "setuid",
    "setgid",
    "setreuid",
    "setregid",
    "setresuid",
    "setresgid",
    "setgroups",
    "setfsuid",
    "setfsgid",
    "personality",
    "name_to_handle_at",
    "open_by_handle_at",
    "quotactl",
    "syslog",
    "lookup_dcookie",
    "mknod",
    "mknodat",
)


def compile_filter() -> bytes:
    """The raw BPF program (struct sock_filter[]) for the running architecture."""
    import pyseccomp as sc

    flt = sc.SyscallFilter(defaction=sc.ALLOW)
    deny = sc.ERRNO(errno.EPERM)
    for name in BLOCKED:
        try:
            flt.add_rule(deny, name)
        except (RuntimeError, ValueError, OSError):
            continue  # a syscall this architecture does not have
    # clone without CLONE_THREAD is a new process; threads stay possible.
    flt.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, _CLONE_THREAD, 0))
    # clone3 passes its flags in memory seccomp cannot read: ENOSYS makes glibc fall back to clone.
    flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    flt.add_rule(deny, "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, _TIOCSTI))
    fd = os.memfd_create("picloud-bpf")
    with os.fdopen(fd, "w+b") as fh:
        flt.export_bpf(fh)
        fh.seek(0)
        return fh.read()
