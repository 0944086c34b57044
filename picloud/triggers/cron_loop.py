"""The cron clock: when each cron trigger is next due, catch-up after downtime, skips."""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
from typing import TYPE_CHECKING

from picloud.store.db import now_ms
from picloud.store.outbox import delete_events, enqueue_cron_run, iso_ms
from picloud.store.triggers import Trigger
from picloud.triggers.cron import latest_due, next_due

if TYPE_CHECKING:
    from picloud.triggers.dispatcher import Dispatcher

__all__ = ["CronClock"]

log = logging.getLogger("picloud.triggers")
_BAD_SCHEDULE = (ValueError, KeyError)  # ZoneInfoNotFoundError is a KeyError


class CronClock:
    """Due times of the enabled cron triggers; fires them as events into the outbox."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._d = dispatcher
        self._due: dict[str, int] = {}  # trigger id -> unix ms

    def start(self) -> None:
        """At start-up: a run missed while the daemon was down fires once, at once."""
        for t in self._d.triggers.values():
            self.schedule(t, catch_up=True)

    def schedule(self, t: Trigger, *, catch_up: bool) -> None:
        if t.kind != "cron" or not t.enabled or t.schedule is None:
            self._due.pop(t.id, None)
            return
        try:
            self._schedule(t, t.schedule, catch_up)
        except _BAD_SCHEDULE:
            # Validated at creation; a schedule that fails now (a zone removed from tzdata)
            # stops this trigger alone.
            log.exception("cron trigger %s: cannot compute its next run", t.id)
            self._due.pop(t.id, None)

    def _schedule(self, t: Trigger, schedule: str, catch_up: bool) -> None:
        now = now_ms()
        base = t.last_fired_at if t.last_fired_at is not None else t.created_at
        if catch_up:
            missed = latest_due(schedule, t.timezone, now)
            if missed > base:
                # Like systemd's Persistent=true: one run for all that were missed,
                # stamped with the latest missed time so the handler can tell.
                log.info("cron trigger %s: catching up the run due at %s", t.id, iso_ms(missed))
                self._due[t.id] = missed
                return
        self._due[t.id] = next_due(schedule, t.timezone, max(base, now))

    def forget(self, trigger_id: str) -> None:
        self._due.pop(trigger_id, None)

    def seconds_to_next(self) -> float:
        if not self._due:
            return float("inf")
        return (min(self._due.values()) - now_ms()) / 1000

    def next_run_at(self, trigger_id: str) -> int | None:
        return self._due.get(trigger_id)

    async def fire_due(self) -> None:
        now = now_ms()
        for trigger_id, due in sorted(self._due.items(), key=lambda item: item[1]):
            if due > now:
                continue
            t = self._d.triggers.get(trigger_id)
            if t is None or t.kind != "cron" or not t.enabled or t.schedule is None:
                self._due.pop(trigger_id, None)
                continue
            if await self._fire(t, t.schedule, due):
                self._advance(t, t.schedule, max(due, now))

    def _advance(self, t: Trigger, schedule: str, after_ms: int) -> None:
        try:
            self._due[t.id] = next_due(schedule, t.timezone, after_ms)
        except _BAD_SCHEDULE:
            log.exception("cron trigger %s: cannot compute its next run", t.id)
            self._due.pop(t.id, None)

    async def _fire(self, t: Trigger, schedule: str, due: int) -> bool:
        """Queue or skip the run due at `due`; False when the trigger is gone."""
        # Delivered-but-not-yet-purged events must not count as a run still going.
        purge = self._d.take_purge()

        def fire(conn: sqlite3.Connection) -> bool | None:
            delete_events(conn, purge)
            return enqueue_cron_run(conn, t.id, t.app_id, schedule, due)

        queued = await self._d.db.write(fire, routine=True)
        if queued is None:  # deleted meanwhile (with its script or app)
            self._d.triggers.pop(t.id, None)
            self.forget(t.id)
            return False
        current = self._d.triggers.get(t.id, t)
        skipped = current.skipped_runs + (0 if queued else 1)
        self._d.triggers[t.id] = dataclasses.replace(
            current, last_fired_at=due, skipped_runs=skipped
        )
        if queued:
            self._d.stats.cron_fired += 1
        else:
            self._d.stats.cron_skipped += 1
            log.warning(
                "cron trigger %s: the run due at %s is skipped: the previous run is still going",
                t.id,
                iso_ms(due),
            )
        return True
