"""The outbox under SIGKILL: every acknowledged KV change's event is delivered after a restart."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.daemon_process import serve

TOKEN = "pc_admin_crash-test-token-0123456789"
H = {"Authorization": f"Bearer {TOKEN}"}
RECORDER = """
def handle(ctx):
    ev = ctx["event"]
    kv.collection("seen").set(ev["key"], ev["value"])
"""
WRITERS = 8
KILL_AFTER = 300  # acknowledged writes before the SIGKILL (the writers keep going)
MAX_WRITES = 4000  # bounds the load even if the kill came late


async def _call(s: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> Any:
    async with s.request(method, url, json=body, headers=H) as resp:
        data = await resp.json() if resp.content_type == "application/json" else None
        assert resp.status < 300, (resp.status, data)
        return data


async def _writer(
    s: aiohttp.ClientSession, url: str, n: int, acked: list[str], enough: asyncio.Event
) -> None:
    """Sequential PUTs of fresh keys until the daemon dies; records only the acknowledged."""
    for i in range(MAX_WRITES // WRITERS):
        key = f"w{n}-{i}"
        try:
            async with s.put(f"{url}/{key}", json={"value": i}, headers=H) as resp:
                if resp.status != 200:
                    return
                await resp.read()
        except (TimeoutError, aiohttp.ClientError):
            return
        acked.append(key)
        if len(acked) >= KILL_AFTER:
            enough.set()


async def _seen(s: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    items: dict[str, Any] = {}
    cursor = ""
    while True:
        page = await _call(s, "GET", f"{base}/seen?limit=1000&cursor={cursor}")
        items.update({item["key"]: item["value"] for item in page["items"]})
        if not page["cursor"]:
            return items
        cursor = page["cursor"]


@pytest.mark.slow
async def test_sigkill_during_writes_loses_no_acknowledged_event(tmp_path: Path) -> None:
    acked: list[str] = []
    timeout = aiohttp.ClientTimeout(total=10)
    with serve(tmp_path, PICLOUD_ADMIN_TOKEN=TOKEN) as first:
        kv = f"{first.url}/api/v1/admin/apps/home/kv"
        async with aiohttp.ClientSession(timeout=timeout) as s:
            await _call(s, "POST", f"{first.url}/api/v1/admin/apps", {"id": "home"})
            script = {"id": "rec", "app": "home", "source": RECORDER}
            await _call(s, "POST", f"{first.url}/api/v1/admin/scripts", script)
            trigger = {"app": "home", "kind": "kv", "collection": "widgets", "script": "rec"}
            await _call(s, "POST", f"{first.url}/api/v1/admin/triggers", trigger)
            enough = asyncio.Event()
            writers = [
                asyncio.create_task(_writer(s, f"{kv}/widgets", n, acked, enough))
                for n in range(WRITERS)
            ]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(enough.wait(), 10)
            first.proc.kill()  # SIGKILL, mid-load
            first.proc.wait(10)
            await asyncio.gather(*writers)
    assert len(acked) >= KILL_AFTER, "the load did not get going"
    with serve(tmp_path, PICLOUD_ADMIN_TOKEN=TOKEN) as second:
        kv = f"{second.url}/api/v1/admin/apps/home/kv"
        async with aiohttp.ClientSession(timeout=timeout) as s:
            deadline = time.monotonic() + 30
            missing: set[str] = set(acked)
            while missing and time.monotonic() < deadline:
                seen = await _seen(s, kv)
                missing = set(acked) - set(seen)
                await asyncio.sleep(0.2)
            assert not missing, f"{len(missing)} of {len(acked)} acknowledged events lost"
            # Every event is handled: nothing pending, retrying or dead once the purge ran.
            for _ in range(100):
                page = await _call(s, "GET", f"{second.url}/api/v1/admin/triggers")
                t = page["items"][0]
                if t["pending"] + t["retrying"] == 0:
                    break
                await asyncio.sleep(0.1)
            assert (t["pending"], t["retrying"], t["dead"]) == (0, 0, 0)
