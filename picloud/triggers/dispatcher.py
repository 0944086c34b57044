"""The trigger dispatcher: outbox events -> handler runs, in order per key, bounded.

Events are scanned by id (a cursor) when a commit wakes the dispatcher, and held
in memory in lanes, one lane per (trigger, order key). One task per lane runs its
events strictly one after another, so event n+1 of a key never starts while event
n is running or waiting for a retry; lanes run concurrently, bounded per trigger,
per app and overall (see `Limits`). A trigger holding too many events in memory,
or disabled, is "parked": its rows stay in the table and are loaded again from
the parked id once it has room, so it cannot crowd out the others.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from picloud.executor.api import Executor
from picloud.store import Database
from picloud.store.db import now_ms
from picloud.store.outbox import Event, delete_events, events_after, trigger_events
from picloud.store.triggers import Trigger, all_triggers, get_trigger
from picloud.triggers.cron_loop import CronClock
from picloud.triggers.delivery import attempt, resume_dead_letter_handlers
from picloud.triggers.stats import DispatcherStats

__all__ = ["Dispatcher", "Limits"]

log = logging.getLogger(__name__)

_FETCH = 512  # rows per scan query
# Events held in memory at once (each key with events has a task): ~16 MB at worst, and
# 16 triggers must be full before one more is kept waiting by the total.
_MAX_LOADED = 8192
_PER_TRIGGER = 512  # events held in memory per trigger before it is parked
_PURGE_DELAY_S = 0.02  # delivered events are deleted in batches this often
_IDLE_S = 60.0  # the longest sleep without a wake (re-reads the wall clock for cron)
_RESYNC_S = 30.0  # how often the trigger cache is checked against the table


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """Concurrent handler runs: overall, per app, per trigger."""

    total: int = 16
    per_app: int = 8
    per_trigger: int = 4

    @classmethod
    def derive(cls, concurrency: int, workers: int | None, workers_per_app: int | None) -> Limits:
        """Bounds below the executor's, so triggers leave a worker for HTTP calls and a
        slow trigger leaves room for its siblings (app and trigger bounds nest)."""
        total = max(1, concurrency)
        if workers is not None:
            total = max(1, min(total, workers - 1))
        per_app = max(1, total // 2)
        if workers_per_app is not None:
            per_app = max(1, min(per_app, workers_per_app - 1))
        per_trigger = max(1, per_app - 1) if per_app > 1 else 1
        return cls(total, per_app, per_trigger)


class Dispatcher:
    """Owns the lanes, the purge of delivered events and the cron clock."""

    def __init__(self, db: Database, executor: Executor | None, limits: Limits) -> None:
        self.db = db
        self.executor = executor
        self.limits = limits
        self.stats = DispatcherStats()
        self.triggers: dict[str, Trigger] = {}
        self.cron = CronClock(self)
        self._wake = asyncio.Event()
        self._cursor = 0
        self._capped = False
        self._parked: dict[str, int] = {}  # trigger id -> the first event id not loaded
        self._loaded: set[int] = set()
        self._per_trigger: collections.Counter[str] = collections.Counter()
        self._lanes: dict[tuple[str, str], collections.deque[Event]] = {}
        self._total = asyncio.Semaphore(limits.total)
        self._app_slots: dict[str, asyncio.Semaphore] = {}
        self._trigger_slots: dict[str, asyncio.Semaphore] = {}
        self._purge_ids: list[int] = []
        self._purge_handle: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.dead_letter_runs: set[str] = set()  # dead letters whose script is running now
        self._synced_at = 0.0
        self._changed_meanwhile: set[str] | None = None  # see _resync

    # ---- the main loop

    def wake(self) -> None:
        """Called after every commit: new events may be waiting."""
        self._wake.set()

    async def run(self) -> None:
        await self._resync()
        self.cron.start()
        self.spawn(resume_dead_letter_handlers(self), "dead-letter-resume")
        while True:
            self._wake.clear()
            try:
                if time.monotonic() - self._synced_at > _RESYNC_S:
                    await self._resync()
                await self._fetch()
                await self.cron.fire_due()
            except Exception:  # noqa: BLE001 - the dispatcher must outlive any one failure
                # e.g. the store hiccuped (disk full, locked): try again shortly, never give up.
                log.exception("triggers: the dispatcher loop failed; retrying in 1 s")
                await asyncio.sleep(1.0)
                continue
            timeout = min(_IDLE_S, max(0.0, self.cron.seconds_to_next()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def _resync(self) -> None:
        """Reload every trigger: catches changes made around the admin API (a script or an
        app deleted with its triggers by cascade, a restored backup)."""
        # A trigger the admin API changes while this read is on its thread is newer than
        # what the read returns: leave it as trigger_changed applied it.
        changed: set[str] = set()
        self._changed_meanwhile = changed
        try:
            rows = {t.id: t for t in await self.db.read(all_triggers)}
        finally:
            self._changed_meanwhile = None
        self._synced_at = time.monotonic()
        for trigger_id in set(self.triggers) - set(rows) - changed:
            self._apply(trigger_id, None)
        for t in rows.values():
            if t.id in changed:
                continue
            old = self.triggers.get(t.id)
            if old != t:
                self._apply(t.id, t, reschedule=old is not None)

    async def stop(self) -> None:
        """Cancel every lane (their events stay in the outbox) and purge what was delivered."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._purge_handle is not None:
            self._purge_handle.cancel()
        with contextlib.suppress(Exception):
            await self._purge()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("triggers: task %s failed", task.get_name(), exc_info=task.exception())

    # ---- trigger cache

    def trigger(self, trigger_id: str) -> Trigger | None:
        t = self.triggers.get(trigger_id)
        if t is None:
            # Created a moment ago: the commit woke us before the admin call told us.
            t = self.db.read_now(lambda conn: get_trigger(conn, trigger_id))
            if t is not None:
                self.triggers[t.id] = t
        return t

    def trigger_changed(self, trigger_id: str) -> None:
        """The admin API created, changed or deleted a trigger: reload it."""
        if self._changed_meanwhile is not None:
            self._changed_meanwhile.add(trigger_id)
        self._apply(trigger_id, self.db.read_now(lambda conn: get_trigger(conn, trigger_id)))
        self._wake.set()

    def _apply(self, trigger_id: str, t: Trigger | None, *, reschedule: bool = True) -> None:
        if t is None:
            self.triggers.pop(trigger_id, None)
            self._parked.pop(trigger_id, None)
            self._trigger_slots.pop(trigger_id, None)
            self.cron.forget(trigger_id)
            return
        self.triggers[t.id] = t
        if reschedule:
            self.cron.schedule(t, catch_up=False)
        if t.enabled:
            self._refill(t.id)

    # ---- loading events

    async def _fetch(self) -> None:
        while len(self._loaded) < _MAX_LOADED:
            rows = self.db.read_now(lambda conn: events_after(conn, self._cursor, _FETCH))
            for ev in rows:
                self._cursor = ev.id
                self._offer(ev)
            if len(rows) < _FETCH:
                self._capped = False
                return
            await asyncio.sleep(0)  # a backlog loads in slices, between HTTP requests
        self._capped = True

    def _offer(self, ev: Event) -> None:
        if ev.id in self._loaded:
            return
        t = self.trigger(ev.trigger_id)
        if t is None:
            return  # deleted: its events went with it
        if not t.enabled or t.id in self._parked or self._per_trigger[t.id] >= _PER_TRIGGER:
            self._park(t.id, ev.id)
            return
        self._load(ev)

    def _park(self, trigger_id: str, event_id: int) -> None:
        self._parked[trigger_id] = min(self._parked.get(trigger_id, event_id), event_id)

    def _load(self, ev: Event) -> None:
        self._loaded.add(ev.id)
        self._per_trigger[ev.trigger_id] += 1
        self.stats.loaded = len(self._loaded)
        key = (ev.trigger_id, ev.order_key)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = collections.deque()
            self.spawn(self._run_lane(key, lane), f"lane-{ev.trigger_id}")
        lane.append(ev)

    def _unload(self, ev: Event) -> None:
        self._loaded.discard(ev.id)
        self._per_trigger[ev.trigger_id] -= 1
        if self._per_trigger[ev.trigger_id] <= 0:
            del self._per_trigger[ev.trigger_id]
        self.stats.loaded = len(self._loaded)
        if ev.trigger_id in self._parked:
            self._refill(ev.trigger_id)
        if self._capped and len(self._loaded) < _MAX_LOADED // 2:
            self._capped = False
            self._wake.set()

    def _refill(self, trigger_id: str) -> None:
        """Load a parked trigger's events (up to the scan cursor) once it has room."""
        resume = self._parked.get(trigger_id)
        t = self.triggers.get(trigger_id)
        room = _PER_TRIGGER - self._per_trigger[trigger_id]
        if resume is None or t is None or not t.enabled or room < _PER_TRIGGER // 2:
            return
        rows = self.db.read_now(
            lambda conn: trigger_events(conn, trigger_id, resume, self._cursor, room)
        )
        for ev in rows:
            if ev.id not in self._loaded:
                self._load(ev)
        if len(rows) < room:
            del self._parked[trigger_id]
        else:
            self._parked[trigger_id] = rows[-1].id + 1

    # ---- lanes

    async def _run_lane(self, key: tuple[str, str], lane: collections.deque[Event]) -> None:
        try:
            while lane:
                ev = lane[0]
                t = self.triggers.get(ev.trigger_id)
                if t is None or not t.enabled:
                    self._drop_lane(lane, park=t is not None)
                    return
                wait_ms = ev.next_at - now_ms()
                if wait_ms > 0:
                    await asyncio.sleep(wait_ms / 1000)
                    continue  # the trigger may have changed meanwhile
                try:
                    after = await attempt(self, t, ev)
                except Exception:  # noqa: BLE001 - a stuck lane would stall its key for good
                    # The event is still in the outbox: keep its place and try again later.
                    log.exception("triggers: event %d could not be handled; retrying in 5 s", ev.id)
                    after = dataclasses.replace(ev, next_at=now_ms() + 5000)
                if after is None:
                    lane.popleft()
                    self._unload(ev)
                else:
                    lane[0] = after
        finally:
            if self._lanes.get(key) is lane and not lane:
                del self._lanes[key]

    def _drop_lane(self, lane: collections.deque[Event], park: bool) -> None:
        """Forget a lane's events (they stay in the outbox); parked again if the trigger lives."""
        events = list(lane)
        lane.clear()
        for ev in events:
            if park:
                self._park(ev.trigger_id, ev.id)
            self._loaded.discard(ev.id)
            self._per_trigger[ev.trigger_id] -= 1
        self.stats.loaded = len(self._loaded)

    @contextlib.asynccontextmanager
    async def slot(self, app_id: str, trigger_id: str | None) -> AsyncIterator[None]:
        """A place among the concurrent handler runs: per trigger, per app, overall."""
        # Innermost last: a run waiting for its trigger's turn holds no app or total slot.
        sems = [_sem(self._app_slots, app_id, self.limits.per_app), self._total]
        if trigger_id is not None:
            sems.insert(0, _sem(self._trigger_slots, trigger_id, self.limits.per_trigger))
        held: list[asyncio.Semaphore] = []
        try:
            for sem in sems:
                await sem.acquire()
                held.append(sem)
            self.stats.in_flight += 1
            try:
                yield
            finally:
                self.stats.in_flight -= 1
        finally:
            for sem in reversed(held):
                sem.release()

    # ---- purge of delivered events

    def delivered(self, event_id: int) -> None:
        self._purge_ids.append(event_id)
        if self._purge_handle is None:
            loop = asyncio.get_running_loop()
            self._purge_handle = loop.call_later(_PURGE_DELAY_S, self._start_purge)

    def take_purge(self) -> list[int]:
        """The delivered ids not yet purged (the caller deletes them in its own write)."""
        ids, self._purge_ids = self._purge_ids, []
        return ids

    def _start_purge(self) -> None:
        self._purge_handle = None
        self.spawn(self._purge(), "purge")

    async def _purge(self) -> None:
        ids = self.take_purge()
        if ids:
            await self.db.write(lambda conn: delete_events(conn, ids), routine=True, bulk=True)


def _sem(table: dict[str, asyncio.Semaphore], key: str, size: int) -> asyncio.Semaphore:
    sem = table.get(key)
    if sem is None:
        sem = table[key] = asyncio.Semaphore(size)
    return sem
