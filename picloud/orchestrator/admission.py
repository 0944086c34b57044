"""Admission control: bounded concurrency per app and in total, a bounded queue, no endless wait.

Waiters queue per app (FIFO), each with a sequence number; a freed slot goes to
the oldest waiter that fits. The queue path costs one future and one timer per
waiter, and a release looks only at the head waiter of each app.
"""

from __future__ import annotations

import asyncio
import collections
import itertools

from picloud.errors import Unavailable

__all__ = ["Admission"]


class _Waiter:
    __slots__ = ("app_id", "future", "seq", "timer")

    def __init__(self, app_id: str, seq: int, future: asyncio.Future[None]) -> None:
        self.app_id = app_id
        self.seq = seq
        self.future = future
        self.timer: asyncio.TimerHandle | None = None


class Admission:
    def __init__(self, max_total: int, max_per_app: int, max_queue: int, timeout_s: float) -> None:
        self.max_total = max_total
        self.max_per_app = max_per_app
        self.max_queue = max_queue
        self.timeout_s = timeout_s
        self.running = 0
        self.refused = 0
        self.queued = 0
        self._per_app: dict[str, int] = {}
        self._waiting: dict[str, collections.deque[_Waiter]] = {}
        self._seq = itertools.count()

    def _fits(self, app_id: str) -> bool:
        return self.running < self.max_total and self._per_app.get(app_id, 0) < self.max_per_app

    def _take(self, app_id: str) -> None:
        self.running += 1
        self._per_app[app_id] = self._per_app.get(app_id, 0) + 1

    def _refuse(self, why: str) -> Unavailable:
        self.refused += 1
        return Unavailable(why, headers={"Retry-After": "1"})

    def try_acquire(self, app_id: str) -> bool:
        """A slot now, without a coroutine, when one is free and nobody waits; else False."""
        if not self.queued and self._fits(app_id):
            self._take(app_id)
            return True
        return False

    async def acquire(self, app_id: str) -> None:
        """A run slot for the app; Unavailable (503, Retry-After) when full or waited too long."""
        if not self.queued and self._fits(app_id):
            self._take(app_id)
            return
        if self.queued >= self.max_queue:
            raise self._refuse("too many invocations are running or queued; retry shortly")
        loop = asyncio.get_running_loop()
        waiter = _Waiter(app_id, next(self._seq), loop.create_future())
        self._waiting.setdefault(app_id, collections.deque()).append(waiter)
        self.queued += 1
        waiter.timer = loop.call_later(self.timeout_s, self._expire, waiter)
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self.release(app_id)  # granted just as the caller gave up: hand it on
            else:
                self._drop(waiter)
            raise
        finally:
            waiter.timer.cancel()

    def _expire(self, waiter: _Waiter) -> None:
        if not waiter.future.done():
            self._drop(waiter)
            waiter.future.set_exception(
                self._refuse("waited too long for a free worker; retry shortly")
            )

    def _drop(self, waiter: _Waiter) -> None:
        queue = self._waiting.get(waiter.app_id)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            self.queued -= 1
            if not queue:
                del self._waiting[waiter.app_id]

    def release(self, app_id: str) -> None:
        self.running -= 1
        left = self._per_app.get(app_id, 1) - 1
        if left:
            self._per_app[app_id] = left
        else:
            self._per_app.pop(app_id, None)
        if self.queued:
            self._wake()

    def _wake(self) -> None:
        while self.running < self.max_total:
            best: _Waiter | None = None
            for app_id, queue in self._waiting.items():
                head = queue[0]
                if self._per_app.get(app_id, 0) < self.max_per_app and (
                    best is None or head.seq < best.seq
                ):
                    best = head
            if best is None:
                return
            self._waiting[best.app_id].popleft()
            if not self._waiting[best.app_id]:
                del self._waiting[best.app_id]
            self.queued -= 1
            self._take(best.app_id)
            best.future.set_result(None)
