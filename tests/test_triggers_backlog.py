"""Backlogs: a trigger over its in-memory share is parked and resumed in order; a disabled
trigger holds its queued events and delivers them when enabled again."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import Daemon
from tests.test_deadletters import FLAKY
from tests.test_triggers import APPENDER, KV, WRITER, T, kv_items, wait_for


async def test_parked_trigger_resumes_in_order(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tiny bounds so a short burst overflows them: rows are scanned 2 at a time and a
    # trigger may hold 3 events in memory before it is parked.
    monkeypatch.setattr("picloud.triggers.dispatcher._FETCH", 2)
    monkeypatch.setattr("picloud.triggers.dispatcher._PER_TRIGGER", 3)
    await daemon.make_app("home")
    await daemon.deploy("append", APPENDER)
    await daemon.deploy("writer", WRITER)
    await daemon.call(
        "POST",
        T,
        json={"app": "home", "kind": "kv", "collection": "widgets", "script": "append"},
        expect=201,
    )
    n, keys = 12, ["a", "b"]
    resp = await daemon.client.get(f"/api/v1/execute/writer?n={n}&keys={','.join(keys)}")
    assert resp.status == 200, await resp.text()

    async def done() -> dict[str, Any] | None:
        log = await kv_items(daemon, "log")
        return log if all(len(log.get(k, [])) >= n for k in keys) else None

    log = await wait_for(done, limit_s=30, what="every event of the parked trigger")
    for k in keys:
        assert log[k] == list(range(n)), (k, log[k])


async def test_disabled_trigger_holds_queued_events(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await daemon.deploy("flaky", FLAKY)
    body = {
        "app": "home",
        "kind": "kv",
        "collection": "widgets",
        "script": "flaky",
        "backoff_base_ms": 300,
        "backoff_max_ms": 300,
    }
    t = await daemon.call("POST", T, json=body, expect=201)
    await daemon.call("PUT", f"{KV}/widgets/x", json={"value": {"ok_at": 2}}, expect=200)

    async def retrying() -> bool:
        got = await daemon.call("GET", f"{T}/{t['id']}", expect=200)
        return bool(got["retrying"] == 1)

    await wait_for(retrying, what="the first failed attempt")
    await daemon.call("PATCH", f"{T}/{t['id']}", json={"enabled": False}, expect=200)
    await asyncio.sleep(0.8)  # well past the retry time: nothing runs while disabled
    assert (await kv_items(daemon, "attempts")) == {"x": 1}
    held = await daemon.call("GET", f"{T}/{t['id']}", expect=200)
    assert held["retrying"] == 1
    await daemon.call("PATCH", f"{T}/{t['id']}", json={"enabled": True}, expect=200)
    done = await wait_for(lambda: kv_items(daemon, "done"), what="delivery after enabling")
    assert done == {"x": 2}
