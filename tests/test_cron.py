"""Cron triggers: schedules and time zones, catch-up after downtime, skipped overlapping runs."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from picloud.app import create_app
from picloud.config import Settings
from picloud.state import RUNTIME
from picloud.triggers.cron import latest_due, next_due
from tests.conftest import Daemon
from tests.test_triggers import T, kv_items, wait_for

TICK = """
def handle(ctx):
    ev = ctx["event"]
    kv.collection("ticks").set(ev["at"], {"event": ev, "dl": ctx["is_dead_letter_handler"]})
"""
BROKEN = "def handle(ctx):\n    raise RuntimeError('cron broke')\n"


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def iso(ms_value: int) -> str:
    text = datetime.fromtimestamp(ms_value / 1000, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def test_next_and_latest_due_in_utc() -> None:
    at = ms("2026-01-01T10:02:30+00:00")
    assert iso(next_due("*/5 * * * *", None, at)) == "2026-01-01T10:05:00.000Z"
    assert iso(latest_due("*/5 * * * *", None, at)) == "2026-01-01T10:00:00.000Z"
    # A time exactly on the schedule is its own latest due time, and not its next.
    on = ms("2026-01-01T10:05:00+00:00")
    assert latest_due("*/5 * * * *", None, on) == on
    assert iso(next_due("*/5 * * * *", None, on)) == "2026-01-01T10:10:00.000Z"


def test_time_zone_and_daylight_saving() -> None:
    winter = ms("2026-01-10T00:00:00+00:00")
    summer = ms("2026-07-10T00:00:00+00:00")
    assert iso(next_due("0 7 * * *", "Europe/Berlin", winter)) == "2026-01-10T06:00:00.000Z"
    assert iso(next_due("0 7 * * *", "Europe/Berlin", summer)) == "2026-07-10T05:00:00.000Z"
    assert iso(next_due("0 7 * * *", None, summer)) == "2026-07-10T07:00:00.000Z"
    # 02:30 does not exist in Berlin on 2026-03-29 (clocks jump 02:00 -> 03:00).
    before = ms("2026-03-28T23:00:00+00:00")
    due = next_due("30 2 * * *", "Europe/Berlin", before)
    assert ms("2026-03-29T00:59:00+00:00") < due <= ms("2026-03-29T01:30:00+00:00")


@contextlib.asynccontextmanager
async def running(settings: Settings, admin: dict[str, str]) -> AsyncIterator[Daemon]:
    """The real daemon on the given state dir; leaving the block stops it (a restart)."""
    server = TestServer(create_app(settings), host="127.0.0.1", port=0)
    client: TestClient[Any, Any] = TestClient(server)
    await client.start_server()
    server.app[RUNTIME].listening = True
    try:
        yield Daemon(client, settings, admin)
    finally:
        await client.close()


async def make_cron(d: Daemon, source: str, **extra: Any) -> dict[str, Any]:
    await d.make_app("home")
    await d.deploy("tick", source)
    body = {"app": "home", "kind": "cron", "schedule": "* * * * *", "script": "tick", **extra}
    result: dict[str, Any] = await d.call("POST", T, json=body, expect=201)
    return result


def edit_db(settings: Settings, sql: str, *params: Any) -> None:
    """Change the stopped daemon's database, as time passing while it was down would."""
    conn = sqlite3.connect(settings.db_path)
    with conn:
        conn.execute(sql, params)
    conn.close()


async def test_created_trigger_does_not_fire_at_once(daemon: Daemon) -> None:
    t = await make_cron(daemon, TICK)
    assert t["last_run_at"] is not None
    assert t["next_run_at"] > t["last_run_at"]
    assert await kv_items(daemon, "ticks") == {}


async def test_runs_missed_while_down_fire_once(settings: Settings, admin: dict[str, str]) -> None:
    async with running(settings, admin) as d:
        t = await make_cron(d, TICK)
    now = int(time.time() * 1000)
    edit_db(settings, "UPDATE triggers SET last_fired_at = ?", now - 10 * 60_000)
    async with running(settings, admin) as d:
        started = int(time.time() * 1000)
        ticks = await wait_for(lambda: kv_items(d, "ticks"), what="the catch-up run")
        expected = iso(latest_due("* * * * *", None, started))
        caught = [at for at in ticks if ms(at.replace("Z", "+00:00")) <= started]
        assert caught == [expected]  # one run for the ten missed, stamped with the latest
        ev = ticks[expected]["event"]
        assert ev == {"type": "cron", "schedule": "* * * * *", "at": expected}
        assert ticks[expected]["dl"] is False
        got = await d.call("GET", f"{T}/{t['id']}", expect=200)
        assert got["last_run_at"] >= expected
        assert got["skipped_runs"] == 0


async def test_a_run_due_while_the_last_is_going_is_skipped(
    settings: Settings, admin: dict[str, str]
) -> None:
    async with running(settings, admin) as d:
        t = await make_cron(d, TICK)
    now = int(time.time() * 1000)
    # The previous run is still waiting for a retry an hour from now.
    edit_db(
        settings,
        "INSERT INTO events (trigger_id, app_id, order_key, payload, state, attempts, next_at,"
        " created_at) VALUES (?, 'home', 'cron', '{}', 'retrying', 1, ?, ?)",
        t["id"],
        now + 3_600_000,
        now,
    )
    edit_db(settings, "UPDATE triggers SET last_fired_at = ?", now - 5 * 60_000)
    async with running(settings, admin) as d:

        async def skipped() -> dict[str, Any] | None:
            got: dict[str, Any] = await d.call("GET", f"{T}/{t['id']}", expect=200)
            return got if got["skipped_runs"] == 1 else None

        got = await wait_for(skipped, what="the skipped run")
        assert got["retrying"] == 1
        assert got["pending"] == 0
        assert await kv_items(d, "ticks") == {}


async def test_failed_cron_runs_retry_then_dead_letter(
    settings: Settings, admin: dict[str, str]
) -> None:
    async with running(settings, admin) as d:
        t = await make_cron(d, BROKEN, max_attempts=2, backoff_base_ms=10, backoff_max_ms=10)
    edit_db(settings, "UPDATE triggers SET last_fired_at = ?", int(time.time() * 1000) - 120_000)
    async with running(settings, admin) as d:

        async def dead() -> list[dict[str, Any]]:
            page = await d.call("GET", f"/api/v1/admin/dead-letters?trigger={t['id']}")
            return list(page["items"])

        items = await wait_for(dead, what="the cron dead letter")
        assert items[0]["attempts"] == 2
        assert items[0]["event"]["type"] == "cron"
        assert "cron broke" in items[0]["error"]


async def test_disabled_cron_trigger_does_not_catch_up(
    settings: Settings, admin: dict[str, str]
) -> None:
    async with running(settings, admin) as d:
        t = await make_cron(d, TICK)
        off = await d.call("PATCH", f"{T}/{t['id']}", json={"enabled": False}, expect=200)
        assert off["next_run_at"] is None
    edit_db(settings, "UPDATE triggers SET last_fired_at = ?", int(time.time() * 1000) - 600_000)
    async with running(settings, admin) as d:
        on = await d.call("PATCH", f"{T}/{t['id']}", json={"enabled": True}, expect=200)
        assert on["next_run_at"] is not None
        assert ms(on["last_run_at"].replace("Z", "+00:00")) > time.time() * 1000 - 5000
        await asyncio.sleep(0.3)
        ticks = await kv_items(d, "ticks")
        assert all(ms(at.replace("Z", "+00:00")) > time.time() * 1000 - 5000 for at in ticks)


@pytest.mark.parametrize("schedule", ["@hourly", "0 */2 * * 1-5", "15,45 8-18 * * *"])
async def test_schedules_accepted(daemon: Daemon, schedule: str) -> None:
    t = await make_cron(daemon, TICK, schedule=schedule)
    assert t["schedule"] == schedule


def _every(period_ms: int) -> Any:
    """A stand-in for next_due that fires every `period_ms` (the real cron minimum is a
    minute): the clock's timer, firing, skip and delivery paths stay the real ones."""

    def due(schedule: str, timezone: str | None, after_ms: int) -> int:
        return (after_ms // period_ms + 1) * period_ms

    return due


async def test_the_clock_fires_live_runs(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("picloud.triggers.cron_loop.next_due", _every(300))
    t = await make_cron(daemon, TICK)

    async def ticks() -> dict[str, Any] | None:
        got = await kv_items(daemon, "ticks")
        return got if len(got) >= 3 else None

    got = await wait_for(ticks, limit_s=10, what="three live runs")
    stamps = sorted(ms(at.replace("Z", "+00:00")) for at in got)
    assert all(s % 300 == 0 for s in stamps)  # `at` is the scheduled time
    assert len(set(stamps)) == len(stamps)
    info = await daemon.call("GET", f"{T}/{t['id']}", expect=200)
    assert info["skipped_runs"] == 0


async def test_a_live_run_still_going_skips_the_next(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("picloud.triggers.cron_loop.next_due", _every(200))
    slow = TICK + "    import time\n    time.sleep(1.0)\n"
    t = await make_cron(daemon, slow)

    async def skipped() -> dict[str, Any] | None:
        got: dict[str, Any] = await daemon.call("GET", f"{T}/{t['id']}", expect=200)
        return got if got["skipped_runs"] >= 2 else None

    await wait_for(skipped, limit_s=10, what="skipped runs")
    await asyncio.sleep(1.2)
    ticks = await kv_items(daemon, "ticks")
    # Runs are 1 s long and due every 200 ms: they never overlapped, so few ran.
    assert 1 <= len(ticks) <= 4
    stamps = sorted(ms(at.replace("Z", "+00:00")) for at in ticks)
    assert all(b - a >= 800 for a, b in zip(stamps, stamps[1:], strict=False))
