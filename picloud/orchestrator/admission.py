"""Admission control: bounded concurrency per app and in total, a bounded queue, no endless wait."""

from __future__ import annotations

import asyncio
import collections

from picloud.errors import Unavailable

__all__ = ["Admission"]


class Admission:
    def __init__(self, max_total: int, max_per_app: int, max_queue: int, timeout_s: float) -> None:
        self.max_total = max_total
        self.max_per_app = max_per_app
        self.max_queue = max_queue
        self.timeout_s = timeout_s
        self.running = 0
        self.refused = 0
        self._per_app: dict[str, int] = {}
        self._waiters: collections.deque[tuple[str, asyncio.Future[None]]] = collections.deque()

    @property
    def queued(self) -> int:
        return len(self._waiters)

    def _fits(self, app_id: str) -> bool:
        return self.running < self.max_total and self._per_app.get(app_id, 0) < self.max_per_app

    def _take(self, app_id: str) -> None:
        self.running += 1
        self._per_app[app_id] = self._per_app.get(app_id, 0) + 1

    def _refuse(self, why: str) -> Unavailable:
        self.refused += 1
        return Unavailable(why, headers={"Retry-After": "1"})

    async def acquire(self, app_id: str) -> None:
        """A run slot for the app; Unavailable (503, Retry-After) when full or waited too long."""
        if not self._waiters and self._fits(app_id):
            self._take(app_id)
            return
        if len(self._waiters) >= self.max_queue:
            raise self._refuse("too many invocations are running or queued; retry shortly")
        waiter: tuple[str, asyncio.Future[None]] = (
            app_id,
            asyncio.get_running_loop().create_future(),
        )
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.timeout_s):
                await asyncio.shield(waiter[1])
        except (TimeoutError, asyncio.CancelledError) as exc:
            if waiter[1].done():  # granted as we gave up: hand the slot on
                self.release(app_id)
            else:
                self._waiters.remove(waiter)
                waiter[1].cancel()
            if isinstance(exc, TimeoutError):
                raise self._refuse("waited too long for a free worker; retry shortly") from None
            raise

    def release(self, app_id: str) -> None:
        self.running -= 1
        left = self._per_app.get(app_id, 1) - 1
        if left:
            self._per_app[app_id] = left
        else:
            self._per_app.pop(app_id, None)
        self._wake()

    def _wake(self) -> None:
        for waiter in list(self._waiters):
            if self.running >= self.max_total:
                return
            app_id, future = waiter
            if self._fits(app_id):
                self._waiters.remove(waiter)
                self._take(app_id)
                future.set_result(None)
