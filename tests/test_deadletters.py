"""Retries, dead letters, the dead-letter script, replay and the dead-letter admin API."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from picloud.config import Settings
from tests.conftest import Daemon
from tests.test_cron import edit_db, running
from tests.test_triggers import KV, T, kv_items, wait_for

DL = "/api/v1/admin/dead-letters"
FAILING = """
def handle(ctx):
    kv.collection("attempts").incr(ctx["event"]["key"])
    raise ZeroDivisionError("no widgets today")
"""
# Fails until the key's attempt count reaches value["ok_at"].
FLAKY = """
import time
def handle(ctx):
    ev = ctx["event"]
    n = kv.collection("attempts").incr(ev["key"])
    kv.collection("times").set(ev["key"] + "-" + str(n), time.time())
    if n < ev["value"]["ok_at"]:
        raise RuntimeError("not yet")
    kv.collection("done").set(ev["key"], n)
"""
DL_RECORDER = """
def handle(ctx):
    kv.collection("dlseen").set(ctx["event"]["original"]["key"], {
        "event": ctx["event"], "dl": ctx["is_dead_letter_handler"]})
"""
DL_FAILING = """
def handle(ctx):
    raise ValueError("the dead-letter script broke too")
"""


async def setup(d: Daemon, dl_source: str | None = DL_RECORDER, **policy: Any) -> dict[str, Any]:
    await d.make_app("home")
    await d.deploy("bad", FAILING)
    await d.deploy("flaky", FLAKY)
    body: dict[str, Any] = {
        "app": "home",
        "kind": "kv",
        "collection": "widgets",
        "script": "bad",
        "max_attempts": 3,
        "backoff_base_ms": 20,
        "backoff_max_ms": 40,
        **policy,
    }
    if dl_source is not None:
        await d.deploy("dl", dl_source)
        body["dead_letter_script"] = "dl"
    result: dict[str, Any] = await d.call("POST", T, json=body, expect=201)
    return result


async def dead_letters(d: Daemon, query: str = "") -> list[dict[str, Any]]:
    page = await d.call("GET", f"{DL}?{query}", expect=200)
    return list(page["items"])


async def test_failing_handler_is_retried_then_dead_lettered(daemon: Daemon) -> None:
    t = await setup(daemon)
    await daemon.call("PUT", f"{KV}/widgets/w1", json={"value": {"n": 1}}, expect=200)
    items = await wait_for(lambda: dead_letters(daemon, "app=home"), what="a dead letter")
    dl = items[0]
    assert dl["trigger_id"] == t["id"]
    assert dl["script"] == "bad"
    assert dl["app"] == "home"
    assert dl["attempts"] == 3
    assert "ZeroDivisionError" in dl["error"]
    assert "no widgets today" in dl["error"]
    assert dl["event"]["type"] == "kv"
    assert dl["event"]["key"] == "w1"
    assert dl["event"]["value"] == {"n": 1}
    assert (await kv_items(daemon, "attempts"))["w1"] == 3
    # The dead-letter script ran once, with the documented event.
    seen = await wait_for(lambda: kv_items(daemon, "dlseen"), what="the dead-letter script")
    rec = seen["w1"]
    assert rec["dl"] is True
    assert rec["event"] == {
        "type": "dead_letter",
        "original": dl["event"],
        "trigger_id": t["id"],
        "script_id": "bad",
        "attempts": 3,
        "error": dl["error"],
    }

    async def handled() -> dict[str, Any] | None:
        one = await daemon.call("GET", f"{DL}/{dl['id']}", expect=200)
        return one if one["handler_status"] == "ok" else None

    await wait_for(handled, what="handler_status ok")
    counts = await daemon.call("GET", f"{T}/{t['id']}", expect=200)
    assert (counts["pending"], counts["retrying"], counts["dead"]) == (0, 0, 1)


async def test_backoff_doubles_and_a_later_success_is_no_dead_letter(daemon: Daemon) -> None:
    t = await setup(daemon, script="flaky", backoff_base_ms=100, backoff_max_ms=150)
    await daemon.call("PUT", f"{KV}/widgets/f", json={"value": {"ok_at": 3}}, expect=200)
    done = await wait_for(lambda: kv_items(daemon, "done"), what="the third attempt")
    assert done == {"f": 3}
    times = await kv_items(daemon, "times")
    first, second, third = times["f-1"], times["f-2"], times["f-3"]
    assert second - first >= 0.09  # base
    assert third - second >= 0.14  # doubled, capped at 150 ms
    assert third - second < 2.0
    await asyncio.sleep(0.1)
    assert await dead_letters(daemon) == []
    got = await daemon.call("GET", f"{T}/{t['id']}", expect=200)
    assert (got["pending"], got["retrying"], got["dead"]) == (0, 0, 0)


async def test_retrying_event_is_counted(daemon: Daemon) -> None:
    t = await setup(daemon, backoff_base_ms=60_000, backoff_max_ms=60_000)

    async def retrying() -> bool:
        got = await daemon.call("GET", f"{T}/{t['id']}", expect=200)
        return bool(got["retrying"] == 1)

    await daemon.call("PUT", f"{KV}/widgets/slow", json={"value": 1}, expect=200)
    await wait_for(retrying, what="a retrying event")
    # The next event of the same key waits behind it (order per key), another key does not.
    await daemon.call("PUT", f"{KV}/widgets/slow", json={"value": 2}, expect=200)
    await daemon.call("PUT", f"{KV}/widgets/other", json={"value": 3}, expect=200)
    await wait_for(
        lambda: _has(kv_items(daemon, "attempts"), "other"), what="the other key's attempt"
    )
    got = await daemon.call("GET", f"{T}/{t['id']}", expect=200)
    assert got["pending"] >= 1
    assert (await kv_items(daemon, "attempts"))["slow"] == 1


async def _has(items: Any, key: str) -> bool:
    return key in await items


async def test_dead_letter_script_failure_is_recorded_not_dead_lettered(daemon: Daemon) -> None:
    await setup(daemon, dl_source=DL_FAILING, max_attempts=1)
    await daemon.call("PUT", f"{KV}/widgets/x", json={"value": 1}, expect=200)

    async def errored() -> list[dict[str, Any]] | None:
        items = await dead_letters(daemon)
        return items if items and items[0]["handler_status"] == "error" else None

    items = await wait_for(errored, what="the dead-letter script's failure")
    assert len(items) == 1
    assert "the dead-letter script broke too" in items[0]["handler_error"]
    assert items[0]["attempts"] == 1
    await asyncio.sleep(0.3)
    assert len(await dead_letters(daemon)) == 1


async def test_no_dead_letter_script_means_status_none(daemon: Daemon) -> None:
    await setup(daemon, dl_source=None, max_attempts=1)
    await daemon.call("PUT", f"{KV}/widgets/x", json={"value": 1}, expect=200)
    items = await wait_for(lambda: dead_letters(daemon), what="a dead letter")
    assert items[0]["handler_status"] == "none"
    assert items[0]["dead_letter_script"] is None


async def test_replay_requeues_a_fresh_delivery(daemon: Daemon) -> None:
    t = await setup(daemon, max_attempts=1)
    await daemon.call("PUT", f"{KV}/widgets/r", json={"value": {"ok_at": 2}}, expect=200)
    items = await wait_for(lambda: dead_letters(daemon), what="a dead letter")
    # Fix the handler (a new version), then replay: it now succeeds on its next attempt.
    await daemon.call("PUT", "/api/v1/admin/scripts/bad", json={"source": FLAKY}, expect=200)
    dl_id = items[0]["id"]
    replayed = await daemon.call("POST", f"{DL}/{dl_id}/replay", expect=202)
    assert replayed["id"] == dl_id
    assert replayed["replays"] == 1
    assert isinstance(replayed["event_id"], int)
    done = await wait_for(lambda: kv_items(daemon, "done"), what="the replayed delivery")
    assert done == {"r": 2}
    kept = await daemon.call("GET", f"{DL}/{dl_id}", expect=200)
    assert kept["replays"] == 1
    assert kept["replayed_at"] is not None
    await daemon.call("DELETE", f"{DL}/{dl_id}", expect=204)
    await daemon.call("GET", f"{DL}/{dl_id}", expect=404)
    await daemon.call("DELETE", f"{DL}/{dl_id}", expect=404)
    await daemon.call("POST", f"{DL}/{dl_id}/replay", expect=404)
    # A dead letter outlives its trigger; replaying it then is a conflict.
    await daemon.call("PUT", f"{KV}/widgets/r2", json={"value": {"ok_at": 99}}, expect=200)
    items = await wait_for(lambda: dead_letters(daemon), what="a second dead letter")
    await daemon.call("DELETE", f"{T}/{t['id']}", expect=204)
    assert (await daemon.call("GET", f"{DL}/{items[0]['id']}", expect=200))["trigger_id"]
    err = await daemon.call("POST", f"{DL}/{items[0]['id']}/replay", expect=409)
    assert err["error"]["code"] == "conflict"


async def test_list_filters_and_cursor(daemon: Daemon) -> None:
    t = await setup(daemon, max_attempts=1)
    for i in range(5):
        await daemon.call("PUT", f"{KV}/widgets/k{i}", json={"value": i}, expect=200)
    await wait_for(
        lambda: _when_len(dead_letters(daemon, "limit=100"), 5), what="five dead letters"
    )
    first = await daemon.call("GET", f"{DL}?app=home&limit=2", expect=200)
    assert len(first["items"]) == 2
    assert first["cursor"]
    second = await daemon.call("GET", f"{DL}?app=home&limit=2&cursor={first['cursor']}")
    third = await daemon.call("GET", f"{DL}?app=home&limit=2&cursor={second['cursor']}")
    ids = [d["id"] for d in first["items"] + second["items"] + third["items"]]
    assert len(set(ids)) == 5
    assert ids == sorted(ids, reverse=True)  # newest first
    assert third["cursor"] is None
    assert len(await dead_letters(daemon, f"trigger={t['id']}")) == 5
    assert len(await dead_letters(daemon, "script=bad")) == 5
    assert await dead_letters(daemon, "script=other") == []
    assert await dead_letters(daemon, "trigger=trg_nope") == []
    for bad in ("app=Bad App", "limit=0", "limit=x", "cursor=_w"):
        err = await daemon.call("GET", f"{DL}?{bad}", expect=400)
        assert err["error"]["code"] == "bad_request"
    await daemon.call("GET", f"{DL}/dl_missing", expect=404)


async def _when_len(items: Any, n: int) -> bool:
    return len(await items) >= n


async def test_slow_trigger_does_not_hold_up_others_or_http(daemon: Daemon) -> None:
    """A trigger whose handler is slow keeps its own slots busy; other triggers,
    other apps and HTTP calls go on."""
    await daemon.make_app("home")
    await daemon.make_app("away")
    slow = "import time\ndef handle(ctx):\n    time.sleep(2.5)\n"
    await daemon.deploy("slow", slow, timeout_ms=5000)
    await daemon.deploy("rec", "def handle(ctx):\n    kv.collection('seen').set('x', 1)\n")
    await daemon.deploy(
        "rec-away", "def handle(ctx):\n    kv.collection('seen').set('y', 1)\n", app="away"
    )
    await daemon.deploy("ping", "def handle(ctx):\n    return 'pong'\n")
    await daemon.call(
        "POST",
        T,
        json={"app": "home", "kind": "kv", "collection": "slow", "script": "slow"},
        expect=201,
    )
    await daemon.call(
        "POST",
        T,
        json={"app": "home", "kind": "kv", "collection": "fast", "script": "rec"},
        expect=201,
    )
    await daemon.call(
        "POST",
        T,
        json={"app": "away", "kind": "kv", "collection": "fast", "script": "rec-away"},
        expect=201,
    )
    for i in range(12):
        await daemon.call("PUT", f"{KV}/slow/k{i}", json={"value": i}, expect=200)
    await asyncio.sleep(0.2)  # the slow handlers are running now
    started = time.monotonic()
    await daemon.call("PUT", f"{KV}/fast/a", json={"value": 1}, expect=200)
    await daemon.call("PUT", "/api/v1/admin/apps/away/kv/fast/a", json={"value": 1}, expect=200)
    resp = await daemon.client.get("/api/v1/execute/ping")
    assert resp.status == 200
    assert await resp.text() == "pong"
    await wait_for(lambda: kv_items(daemon, "seen"), limit_s=5, what="the other trigger")

    async def away_seen() -> Any:
        page = await daemon.call("GET", "/api/v1/admin/apps/away/kv/seen?limit=10", expect=200)
        return page["items"]

    # The other app's trigger needs a worker of its own first: wait for it too.
    await wait_for(away_seen, limit_s=5, what="the other app's trigger")
    assert time.monotonic() - started < 2.2, "waited for the slow handler"


async def test_retry_state_and_dead_letter_script_survive_a_restart(
    settings: Settings, admin: dict[str, str]
) -> None:
    async with running(settings, admin) as d:
        t = await setup(d, max_attempts=2, backoff_base_ms=60_000, backoff_max_ms=60_000)
        await d.call("PUT", f"{KV}/widgets/r", json={"value": 1}, expect=200)

        async def retrying() -> bool:
            got = await d.call("GET", f"{T}/{t['id']}", expect=200)
            return bool(got["retrying"] == 1)

        await wait_for(retrying, what="the first failed attempt")
    # While it was down: the retry fell due, and a dead letter's script had not run yet.
    edit_db(settings, "UPDATE events SET next_at = 0")
    edit_db(
        settings,
        "INSERT INTO dead_letters (id, app_id, trigger_id, script_id, order_key, event, attempts,"
        " error, created_at, handler_script_id) VALUES ('dl_old', 'home', ?, 'bad', 'k',"
        ' \'{"type":"kv","op":"insert","collection":"widgets","key":"old","value":0,"at":"x"}\','
        " 3, 'boom', 0, 'dl')",
        t["id"],
    )
    async with running(settings, admin) as d:
        await wait_for(
            lambda: _when_len(dead_letters(d, f"trigger={t['id']}"), 2), what="two dead letters"
        )
        dls = await dead_letters(d)
        fresh = next(x for x in dls if x["id"] != "dl_old")
        assert fresh["attempts"] == 2  # 1 before the restart + 1 after: the count was kept
        assert (await kv_items(d, "attempts"))["r"] == 2
        seen = await wait_for(
            lambda: _when(kv_items(d, "dlseen"), lambda s: {"old", "r"} <= set(s)),
            what="both dead-letter script runs",
        )
        assert seen["old"]["event"]["error"] == "boom"
        old = await d.call("GET", f"{DL}/dl_old", expect=200)
        assert old["handler_status"] in ("pending", "ok")


async def _when(value: Any, ok: Any) -> Any:
    result = await value
    return result if ok(result) else None
