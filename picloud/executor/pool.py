"""Workers by app: warm reuse, pristine spares for fresh runs, recycling, the total cap."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from picloud.config import Settings
from picloud.executor.channel import WorkerChannel
from picloud.executor.zygote_client import ExitInfo, SpawnError, ZygoteClient

__all__ = ["Pool", "Worker", "pool_sizes"]

log = logging.getLogger("picloud.executor")
MiB = 1024 * 1024
_UID_BASE = 200000
_FRAME_HEADROOM = 256 * 1024


def pool_sizes(settings: Settings) -> tuple[int, int]:
    """(max workers in total, per app): from the board's cores and memory unless set."""
    cores = os.cpu_count() or 1
    # Physical memory from sysconf: what psutil reports as total, without loading psutil.
    mem_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // MiB
    # Several workers per core: a run mostly waits on its wake-ups (socket hand-offs), so
    # more in flight keeps the cores busy; memory bounds the total (~4 MB USS each).
    total = settings.max_workers or max(4, min(64, cores * 16, mem_mb // 32))
    per_app = settings.max_workers_per_app or max(2, min(total, cores * 16))
    return total, min(per_app, total)


@dataclasses.dataclass(eq=False)
class Worker:
    pid: int
    app_id: str
    channel: WorkerChannel
    exited: asyncio.Future[ExitInfo]
    uses: int = 0
    seen: set[tuple[str, int, int]] = dataclasses.field(default_factory=set)
    last_used: float = dataclasses.field(default_factory=time.monotonic)
    busy: bool = False


class Pool:
    def __init__(
        self,
        settings: Settings,
        zygote: ZygoteClient,
        on_call: Callable[[WorkerChannel, dict[str, Any]], None],
    ) -> None:
        self.settings = settings
        self.zygote = zygote
        self.max_total, self.max_per_app = pool_sizes(settings)
        self._on_call = on_call
        self._idle: dict[str, list[Worker]] = {}
        self._by_pid: dict[int, Worker] = {}
        self._spawning = 0
        self._uids: dict[str, int] = {}
        self._gone: set[str] = set()  # apps deleted while some of their workers were busy
        self._spares: set[asyncio.Task[None]] = set()
        self._sparing: dict[str, asyncio.Task[None]] = {}  # spares being forked right now
        self.max_frame = max(settings.kv_max_value_bytes, 4 * MiB) + settings.log_cap_bytes
        self.max_frame += _FRAME_HEADROOM
        zygote.on_exit = self._exited

    @property
    def size(self) -> int:
        return len(self._by_pid) + self._spawning

    def idle_count(self, app_id: str | None = None) -> int:
        if app_id is not None:
            return len(self._idle.get(app_id, ()))
        return sum(len(v) for v in self._idle.values())

    def uid_for(self, app_id: str) -> int:
        """A uid of its own per app (unique in this daemon's life; nothing on disk is owned)."""
        uid = self._uids.get(app_id)
        if uid is None:
            uid = (self.settings.sandbox_uid_base or _UID_BASE) + len(self._uids)
            self._uids[app_id] = uid
        return uid

    def take_idle(self, app_id: str, fresh: bool) -> Worker | None:
        """An idle worker of the app, now (the common warm case: no coroutine), or None."""
        pick = self._pick(app_id, fresh)
        if pick is not None:
            pick.busy = True
        return pick

    async def checkout(self, app_id: str, fresh: bool) -> tuple[Worker, float | None]:
        """An idle worker of the app (a pristine one when `fresh`), else a new one.

        Returns the worker and, when it had to fork one, how long that took (ms).
        """
        pick = self._pick(app_id, fresh)
        if pick is None and app_id in self._sparing:
            # A spare is being forked for this app: waiting for it beats a second fork.
            await asyncio.shield(self._sparing[app_id])
            pick = self._pick(app_id, fresh)
        if pick is not None:
            pick.busy = True
            return pick, None
        self._gone.discard(app_id)  # the id is in use (again): its new workers are good
        started = time.perf_counter()
        worker = await self._spawn(app_id)
        worker.busy = True
        return worker, (time.perf_counter() - started) * 1000

    def _pick(self, app_id: str, fresh: bool) -> Worker | None:
        idle = self._idle.get(app_id)
        if not idle:
            return None
        pick = next((w for w in reversed(idle) if w.uses == 0), None) if fresh else idle[-1]
        if pick is not None:
            idle.remove(pick)
        return pick

    def checkin(self, worker: Worker, reusable: bool) -> None:
        """Back to the idle list, or retired when it is spent (recycle policy)."""
        worker.busy = False
        worker.uses += 1
        worker.last_used = time.monotonic()
        if (
            not reusable
            or worker.app_id in self._gone
            or worker.channel.closed
            or worker.uses >= self.settings.worker_max_invocations
        ):
            self.retire(worker)
            return
        self._idle.setdefault(worker.app_id, []).append(worker)

    def retire(self, worker: Worker) -> None:
        """Close the channel: the worker reads EOF and exits; the zygote reaps it."""
        self._forget_idle(worker)
        worker.channel.close()

    def kill(self, worker: Worker) -> None:
        self._forget_idle(worker)
        worker.channel.close()
        self.zygote.kill(worker.pid)

    def prefork(self, app_id: str) -> None:
        """Keep one pristine worker for the app ready (fresh runs then skip the fork)."""
        if app_id in self._sparing or self.size >= self.max_total:
            return
        if any(w.uses == 0 for w in self._idle.get(app_id, ())):
            return
        task = asyncio.create_task(self._spare(app_id))
        self._sparing[app_id] = task
        self._spares.add(task)
        task.add_done_callback(self._spares.discard)

    async def _spare(self, app_id: str) -> None:
        try:
            worker = await self._spawn(app_id)
        except SpawnError:
            return
        finally:
            self._sparing.pop(app_id, None)
        self._idle.setdefault(app_id, []).append(worker)

    async def _spawn(self, app_id: str) -> Worker:
        if self.size >= self.max_total:
            self._evict(app_id)
        limits = {
            "data_bytes": self.zygote.base_data + self.settings.default_memory_mb * MiB,
            "data_hard_bytes": self.zygote.base_data + (self.settings.max_memory_mb + 16) * MiB,
            "nproc": 64,
            "cpu_s": 60,
        }
        self._spawning += 1
        try:
            pid, sock = await self.zygote.spawn(self.uid_for(app_id), limits)
        finally:
            self._spawning -= 1
        loop = asyncio.get_running_loop()
        channel = WorkerChannel(app_id, pid, self.max_frame, self._on_call, self._fatal)
        worker = Worker(pid, app_id, channel, loop.create_future())
        self._by_pid[pid] = worker
        try:
            await loop.connect_accepted_socket(lambda: channel, sock)
        except OSError as exc:
            self.kill(worker)
            raise SpawnError(f"cannot attach to the worker: {exc}") from None
        return worker

    def _evict(self, app_id: str) -> None:
        """Make room: retire the least recently used idle worker, another app's first."""
        candidates = [w for ws in self._idle.values() for w in ws]
        if not candidates:
            return
        candidates.sort(key=lambda w: (w.app_id == app_id, w.last_used))
        self.retire(candidates[0])

    def _fatal(self, channel: WorkerChannel, reason: str) -> None:
        worker = self._by_pid.get(channel.pid)
        if worker is not None:
            self._forget_idle(worker)
        self.zygote.kill(channel.pid)

    def _forget_idle(self, worker: Worker) -> None:
        idle = self._idle.get(worker.app_id)
        if idle and worker in idle:
            idle.remove(worker)

    def _exited(self, info: ExitInfo) -> None:
        worker = self._by_pid.pop(info.pid, None)
        if worker is None:
            return
        self._forget_idle(worker)
        worker.channel.close()
        if not worker.exited.done():
            worker.exited.set_result(info)

    def zygote_died(self) -> None:
        """Every worker dies with the zygote (parent-death signal): drop them all."""
        for worker in list(self._by_pid.values()):
            worker.channel.close()
            if not worker.exited.done():
                worker.exited.set_result(ExitInfo(worker.pid, 9, 0.0, 0, lost=True))
        self._by_pid.clear()
        self._idle.clear()

    def forget_app(self, app_id: str) -> None:
        """Retire every idle worker of the app (busy ones are retired when they finish)."""
        for worker in list(self._idle.get(app_id, ())):
            self.retire(worker)
        self._gone.add(app_id)

    def reap_idle(self) -> None:
        deadline = time.monotonic() - self.settings.worker_idle_s
        for workers in list(self._idle.values()):
            for worker in [w for w in workers if w.last_used < deadline]:
                self.retire(worker)

    async def close(self) -> None:
        for task in list(self._spares):
            task.cancel()
        for worker in list(self._by_pid.values()):
            self.kill(worker)
        waits = [w.exited for w in self._by_pid.values()]
        if waits:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await asyncio.gather(*waits, return_exceptions=True)
