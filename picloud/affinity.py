"""CPU co-location: the event loop and a lone running worker share one CPU.

An invocation is a chain of strict hand-offs (daemon -> worker -> daemon, and
one more pair per SDK call), each a wake-up of a process that sleeps. Woken
on the other core, a hand-off costs an inter-processor interrupt; on the same
core it is a plain context switch — on this class of machine ~15-20 µs instead
of ~70-100 µs per round trip (`python -m bench.ipc_floor`). So the loop thread lives
on one "home" CPU, and a worker running alone is asked to run there too; under
concurrency workers may run anywhere, so the other cores still do the work.

Under concurrency the loop thread is the one serial step: busy workers are then
kept off the home CPU (on a 2-core machine measured: warm hello at c=32 went
from 0.28x to 0.41-0.47x the ceiling, against letting them run anywhere).

The worker moves itself (the daemon may lack the right to move another uid's
process): a job frame carries a placement code, the CPU to run on (>= 0), any
CPU (ANY_CPU), or any CPU but one (`away_from`).
"""

from __future__ import annotations

import _thread  # the builtin: `threading` would load into the zygote for one call
import contextlib
import os
from collections.abc import Iterable

__all__ = [
    "ANY_CPU",
    "Colocation",
    "allow",
    "allowed_cpus",
    "away_from",
    "cpus_for",
    "run_on",
]

ANY_CPU = -1
# What "any CPU" means: the CPUs this process was started with (taskset, systemd's
# CPUAffinity=, isolcpus), read at import, before anything pins a thread. The zygote is
# told the daemon's (`allow`): a zygote restarted by the pinned loop thread inherits the pin.
_allowed: frozenset[int] = frozenset(os.sched_getaffinity(0))


def allowed_cpus() -> set[int]:
    return set(_allowed)


def allow(cpus: Iterable[int]) -> None:
    """Set what "any CPU" means in this process (and the children it forks)."""
    global _allowed
    _allowed = frozenset(cpus) or _allowed


def away_from(cpu: int) -> int:
    """The placement code for "any CPU but `cpu`"."""
    return -2 - cpu


def cpus_for(code: int) -> set[int]:
    if code >= 0:
        return {code}
    cpus = set(_allowed)
    if code < ANY_CPU:
        cpus.discard(-2 - code)
    return cpus or set(_allowed)


def run_on(code: int) -> None:
    """Move the calling thread where the placement code says."""
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, cpus_for(code))


class Colocation:
    """Pins the loop thread to a home CPU for as long as an executor runs on it.

    Counted per thread: two daemons in one process (the test suite) share the pin, and
    the thread gets every allowed CPU back when the last of them stops.
    """

    _held: dict[int, int] = {}  # thread id -> starts not yet stopped

    def __init__(self, enabled: bool) -> None:
        # One CPU has nothing to gain; the highest one is the least busy with interrupts
        # on a Raspberry Pi (they land on CPU 0).
        self.home = max(_allowed) if enabled and len(_allowed) > 1 else ANY_CPU

    @property
    def enabled(self) -> bool:
        return self.home != ANY_CPU

    def start(self) -> None:
        if not self.enabled:
            return
        me = _thread.get_ident()
        self._held[me] = self._held.get(me, 0) + 1
        run_on(self.home)

    def stop(self) -> None:
        if not self.enabled:
            return
        me = _thread.get_ident()
        count = self._held.pop(me, 1)
        if count > 1:
            self._held[me] = count - 1
        else:
            run_on(ANY_CPU)

    def cpu_for(self, running: int) -> int:
        """Where a job should run: home when it is the only one running, else off it."""
        return self.home if running == 1 else away_from(self.home)
