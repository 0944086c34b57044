"""KV triggers end to end: real daemon, real sandboxes, real SQLite — shapes, order, loops."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tests.conftest import Daemon

T = "/api/v1/admin/triggers"
KV = "/api/v1/admin/apps/home/kv"
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")

# Records every event it sees under "<op>-<key>", with the ctx keys it got.
RECORDER = """
def handle(ctx):
    ev = ctx["event"]
    kv.collection("seen").set(ev["op"] + "-" + ev["key"], {
        "event": ev, "keys": sorted(ctx), "dl": ctx["is_dead_letter_handler"],
        "secret": ctx["secrets"].get("token")})
"""
# Appends each value to a per-key list: any reordering or overlap shows in the list.
APPENDER = """
import time
def handle(ctx):
    ev = ctx["event"]
    log = kv.collection("log")
    seen = log.get(ev["key"]) or []
    time.sleep(0.002)
    log.set(ev["key"], seen + [ev["value"]])
"""
WRITER = """
def handle(ctx):
    q = ctx["request"]["query"]
    widgets = kv.collection("widgets")
    for i in range(int(q["n"])):
        for k in q["keys"].split(","):
            widgets.set(k, i)
    return {"ok": True}
"""


async def wait_for(
    check: Callable[[], Awaitable[Any]], limit_s: float = 10.0, what: str = "condition"
) -> Any:
    """Poll `check` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + limit_s
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def kv_items(d: Daemon, collection: str) -> dict[str, Any]:
    page = await d.call("GET", f"{KV}/{collection}?limit=1000", expect=200)
    return {item["key"]: item["value"] for item in page["items"]}


async def trigger(d: Daemon, script: str, **extra: Any) -> dict[str, Any]:
    body = {"app": "home", "kind": "kv", "collection": "widgets", "script": script, **extra}
    result: dict[str, Any] = await d.call("POST", T, json=body, expect=201)
    return result


async def test_kv_events_have_the_contract_shape(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await daemon.call("PUT", "/api/v1/admin/apps/home/secrets/token", json={"value": "s3"})
    await daemon.deploy("rec", RECORDER)
    await trigger(daemon, "rec")
    await daemon.call("PUT", f"{KV}/widgets/a", json={"value": {"n": 1}}, expect=200)
    await daemon.call("PUT", f"{KV}/widgets/a", json={"value": [2]}, expect=200)
    await daemon.call("DELETE", f"{KV}/widgets/a", expect=204)
    seen = await wait_for(
        lambda: _when(kv_items(daemon, "seen"), lambda s: len(s) == 3), what="3 events"
    )
    ins, upd, dele = seen["insert-a"], seen["update-a"], seen["delete-a"]
    assert ins["event"]["value"] == {"n": 1}
    assert upd["event"]["value"] == [2]
    assert dele["event"]["value"] is None
    for rec, op in ((ins, "insert"), (upd, "update"), (dele, "delete")):
        ev = rec["event"]
        assert set(ev) == {"type", "op", "collection", "key", "value", "at"}
        assert (ev["type"], ev["op"], ev["collection"], ev["key"]) == ("kv", op, "widgets", "a")
        assert ISO.fullmatch(ev["at"]), ev["at"]
        assert rec["dl"] is False
        assert rec["secret"] == "s3"
        assert rec["keys"] == sorted(
            [
                "app_id",
                "event",
                "invocation_id",
                "is_dead_letter_handler",
                "script_id",
                "sdk_version",
                "secrets",
            ]
        )


async def _when(value: Awaitable[Any], ok: Callable[[Any], bool]) -> Any:
    result = await value
    return result if ok(result) else None


async def test_ops_filter_and_other_collections_are_ignored(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await daemon.deploy("rec", RECORDER)
    await trigger(daemon, "rec", ops=["delete"])
    await daemon.call("PUT", f"{KV}/widgets/a", json={"value": 1}, expect=200)
    await daemon.call("PUT", f"{KV}/gadgets/b", json={"value": 1}, expect=200)
    await daemon.call("DELETE", f"{KV}/gadgets/b", expect=204)
    await daemon.call("DELETE", f"{KV}/widgets/a", expect=204)
    seen = await wait_for(lambda: kv_items(daemon, "seen"), what="the delete event")
    assert list(seen) == ["delete-a"]


async def test_events_of_a_key_arrive_in_order_across_keys(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await daemon.deploy("append", APPENDER)
    await daemon.deploy("writer", WRITER)
    await trigger(daemon, "append")
    n, keys = 25, ["k1", "k2", "k3"]
    resp = await daemon.client.get(f"/api/v1/execute/writer?n={n}&keys={','.join(keys)}")
    assert resp.status == 200, await resp.text()

    async def done() -> dict[str, Any] | None:
        log = await kv_items(daemon, "log")
        return log if all(len(log.get(k, [])) >= n for k in keys) else None

    log = await wait_for(done, limit_s=30, what="every event")
    for k in keys:
        assert log[k] == list(range(n)), (k, log[k])


async def test_a_self_triggering_handler_is_cut_at_depth_8(daemon: Daemon) -> None:
    await daemon.make_app("home")
    loop_src = """
def handle(ctx):
    kv.collection("count").incr("runs")
    kv.collection("widgets").set("k", ctx["event"]["value"] + 1)
"""
    await daemon.deploy("loop", loop_src)
    t = await trigger(daemon, "loop", ops=["insert", "update"])
    await daemon.call("PUT", f"{KV}/widgets/k", json={"value": 0}, expect=200)
    dead = await wait_for(
        lambda: _when(
            daemon.call("GET", f"/api/v1/admin/dead-letters?trigger={t['id']}"),
            lambda r: r["items"],
        ),
        what="the loop's dead letter",
    )
    item = dead["items"][0]
    assert item["error"] == "trigger_loop"
    assert item["attempts"] == 0
    assert item["depth"] == 8
    assert item["event"]["value"] == 8
    await asyncio.sleep(0.3)  # nothing more runs after the cut
    assert (await kv_items(daemon, "count"))["runs"] == 8
    got = await daemon.call("GET", f"{T}/{t['id']}", expect=200)
    assert (got["pending"], got["retrying"], got["dead"]) == (0, 0, 1)


async def test_disabled_trigger_records_nothing_and_resumes_queued(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await daemon.deploy("rec", RECORDER)
    t = await trigger(daemon, "rec")
    await daemon.call("PATCH", f"{T}/{t['id']}", json={"enabled": False}, expect=200)
    await daemon.call("PUT", f"{KV}/widgets/while-off", json={"value": 1}, expect=200)
    await asyncio.sleep(0.3)
    assert await kv_items(daemon, "seen") == {}
    got = await daemon.call("GET", f"{T}/{t['id']}", expect=200)
    assert got["pending"] == 0
    await daemon.call("PATCH", f"{T}/{t['id']}", json={"enabled": True}, expect=200)
    await daemon.call("PUT", f"{KV}/widgets/after", json={"value": 2}, expect=200)
    seen = await wait_for(lambda: kv_items(daemon, "seen"), what="the event after enabling")
    assert list(seen) == ["insert-after"]


async def test_invocations_name_the_trigger_and_event(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await daemon.deploy("rec", RECORDER)
    t = await trigger(daemon, "rec")
    await daemon.call("PUT", f"{KV}/widgets/a", json={"value": 1}, expect=200)
    await wait_for(lambda: kv_items(daemon, "seen"), what="the run")

    async def records() -> list[dict[str, Any]]:
        page = await daemon.call("GET", "/api/v1/admin/invocations?script=rec", expect=200)
        return list(page["items"])

    items = await wait_for(records, what="the invocation record")
    assert items[0]["trigger"] == "kv"
    assert items[0]["trigger_id"] == t["id"]
    assert isinstance(items[0]["event_id"], int)
