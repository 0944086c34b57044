"""GET /metrics: Prometheus text, picloud_* names with units, auth, and live counters."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from picloud.app import create_app
from picloud.config import Settings
from picloud.state import RUNTIME
from tests.conftest import ADMIN_TOKEN, Daemon

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """(family name -> type, (sample name, sorted labels) -> value); fails on bad syntax."""
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return types, samples


async def scrape(d: Daemon) -> tuple[dict[str, str], Samples]:
    resp = await d.client.get("/metrics", headers=d.headers)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "text/plain"
    return parse(await resp.text())


async def test_metrics_need_the_admin_token(daemon: Daemon) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        resp = await daemon.client.get("/metrics", headers=headers)
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "unauthorized"


@contextlib.asynccontextmanager
async def public_daemon(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    settings = Settings(
        bind="127.0.0.1:0", state_dir=tmp_path / "s", admin_token=ADMIN_TOKEN, metrics_public=True
    )
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    client.server.app[RUNTIME].listening = True
    try:
        yield client
    finally:
        await client.close()


async def test_metrics_public_opens_them_to_the_lan(tmp_path: Path) -> None:
    async with public_daemon(tmp_path) as client:
        resp = await client.get("/metrics")
        assert resp.status == 200
        assert "picloud_uptime_seconds" in await resp.text()
        # Opening /metrics opens nothing else.
        assert (await client.get("/api/v1/admin/system")).status == 401


async def test_names_types_and_units(daemon: Daemon) -> None:
    await daemon.make_app("home")  # one committed write
    types, samples = await scrape(daemon)
    names = set(types)
    assert names, "no metrics"
    assert all(n.startswith("picloud_") for n in names), sorted(names)
    resp = await daemon.client.get("/metrics", headers=daemon.headers)
    for family in text_string_to_metric_families(await resp.text()):
        if family.type == "counter":  # exposed as *_total (and *_created)
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples), family
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name
    for needed in (
        "picloud_cpu_usage_ratio",
        "picloud_load_average",
        "picloud_memory_available_bytes",
        "picloud_swap_used_bytes",
        "picloud_temperature_celsius",
        "picloud_throttled",
        "picloud_disk_free_bytes",
        "picloud_disk_written_bytes",
        "picloud_db_size_bytes",
        "picloud_db_wal_bytes",
        "picloud_uptime_seconds",
        "picloud_daemon_memory_bytes",
        "picloud_workers_memory_bytes",
        "picloud_queue_depth",
        "picloud_invocations_running",
        "picloud_workers",
        "picloud_invocations",
        "picloud_invocation_duration_seconds",
        "picloud_trigger_deliveries",
        "picloud_trigger_retries",
        "picloud_trigger_dead_letters",
        "picloud_trigger_events",
        "picloud_dead_letters",
        "picloud_kv_stored_bytes",
        "picloud_store_commits",
        "picloud_retention_pruned_rows",
        "picloud_backups",
    ):
        assert needed in names, needed
    assert types["picloud_invocation_duration_seconds"] == "histogram"
    assert types["picloud_store_commits"] == "counter"
    assert samples[("picloud_memory_available_bytes", ())] > 0
    assert samples[("picloud_store_commits_total", ())] >= 1


async def test_invocations_counted_by_script_and_status(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await daemon.deploy("hello", "def handle(ctx):\n    return {'ok': True}\n")
    await daemon.deploy("broken", "def handle(ctx):\n    raise ValueError('no')\n")
    await scrape(daemon)  # counting starts from here on
    for _ in range(3):
        assert (await daemon.client.post("/api/v1/execute/hello")).status == 200
    assert (await daemon.client.post("/api/v1/execute/broken")).status == 500
    ok = ("picloud_invocations_total", (("script", "hello"), ("status", "ok"), ("trigger", "http")))
    err = (
        "picloud_invocations_total",
        (("script", "broken"), ("status", "script_error"), ("trigger", "http")),
    )
    # Invocation records are written in batches: wait (bounded) for them to land.
    for _ in range(50):
        _, samples = await scrape(daemon)
        if samples.get(ok) == 3 and samples.get(err) == 1:
            break
        await asyncio.sleep(0.1)
    assert samples.get(ok) == 3
    assert samples.get(err) == 1
    count = ("picloud_invocation_duration_seconds_count", (("script", "hello"),))
    assert samples[count] == 3
    inf = ("picloud_invocation_duration_seconds_bucket", (("le", "+Inf"), ("script", "hello")))
    assert samples[inf] == 3
    # Counted once: a second scrape does not count the same records again.
    _, again = await scrape(daemon)
    assert again.get(ok) == 3


async def test_store_figures_follow_the_data(daemon: Daemon) -> None:
    await daemon.make_app("home")
    for k in range(5):
        await daemon.call(
            "PUT", f"/api/v1/admin/apps/home/kv/c/k{k}", json={"value": "x" * 100}, expect=200
        )
    _, samples = await scrape(daemon)
    assert samples[("picloud_kv_stored_bytes", (("app", "home"),))] >= 500
    assert samples[("picloud_apps", ())] == 1
    assert samples[("picloud_dead_letters", ())] == 0


def test_kv_stats_count_ops_and_value_bytes() -> None:
    from picloud.ops.kvstats import KvStats

    stats = KvStats()
    stats.record("kv.set", {"collection": "c", "key": "k", "value": '{"n":1}'}, None)
    stats.record("kv.get", {"collection": "c", "key": "k"}, '{"n":1}')
    stats.record("kv.get", {"collection": "c", "key": "nope"}, None)
    stats.record("kv.list", {"collection": "c"}, {"items": [["k", '{"n":1}']], "cursor": None})
    assert stats.ops == {"set": 1, "get": 2, "list": 1}
    assert stats.written_bytes == 7
    assert stats.read_bytes == 14


async def test_no_created_series(daemon: Daemon) -> None:
    """Counters with labels would each add a `*_created` series; they are turned off."""
    await daemon.make_app("home")
    await daemon.deploy("hello", "def handle(ctx):\n    return 1\n")
    assert (await daemon.client.post("/api/v1/execute/hello")).status == 200
    for _ in range(50):
        resp = await daemon.client.get("/metrics", headers=daemon.headers)
        text = await resp.text()
        if 'picloud_invocations_total{script="hello"' in text:
            break
        await asyncio.sleep(0.1)
    assert 'picloud_invocations_total{script="hello"' in text
    assert "_created" not in text


async def test_counting_survives_deleting_the_newest_records(daemon: Daemon) -> None:
    """Deleting an app removes its invocation records; SQLite then reuses their rowids."""
    for app in ("gone", "home"):
        await daemon.make_app(app)
    await daemon.deploy("doomed", "def handle(ctx):\n    return 1\n", app="gone")
    await daemon.deploy("hello", "def handle(ctx):\n    return 1\n", app="home")
    await scrape(daemon)
    for _ in range(3):
        assert (await daemon.client.post("/api/v1/execute/doomed")).status == 200
    key = (
        "picloud_invocations_total",
        (("script", "doomed"), ("status", "ok"), ("trigger", "http")),
    )
    for _ in range(50):
        _, samples = await scrape(daemon)
        if samples.get(key) == 3:
            break
        await asyncio.sleep(0.1)
    assert samples.get(key) == 3
    await daemon.call("DELETE", "/api/v1/admin/apps/gone", expect=204)
    await scrape(daemon)  # notices the cursor is past the newest record
    assert (await daemon.client.post("/api/v1/execute/hello")).status == 200
    hello = (
        "picloud_invocations_total",
        (("script", "hello"), ("status", "ok"), ("trigger", "http")),
    )
    for _ in range(50):
        _, samples = await scrape(daemon)
        if samples.get(hello) == 1:
            break
        await asyncio.sleep(0.1)
    assert samples.get(hello) == 1


async def test_every_metric_is_documented_and_every_documented_one_exists(
    daemon: Daemon,
) -> None:
    import re

    doc = (Path(__file__).parent.parent / "docs" / "operations.md").read_text()
    table = [ln for ln in doc.splitlines() if ln.startswith("| `picloud_")]
    documented = {
        name.removesuffix("_total")
        for line in table
        for name in re.findall(r"`(picloud_[a-z_]+)`", line.split("|")[1])
    }
    types, _ = await scrape(daemon)
    exposed = {n for n in types if not n.startswith("picloud_process_")}
    assert exposed - documented == set(), "exposed but not in docs/operations.md"
    assert documented - exposed == set(), "documented but not exposed"


async def test_openmetrics_when_the_scraper_asks(daemon: Daemon) -> None:
    headers = {**daemon.headers, "Accept": "application/openmetrics-text; version=1.0.0"}
    resp = await daemon.client.get("/metrics", headers=headers)
    assert resp.status == 200
    assert resp.content_type == "application/openmetrics-text"
    text = await resp.text()
    assert text.rstrip().endswith("# EOF")
    assert "picloud_uptime_seconds" in text


KV_SCRIPT = """
def handle(ctx):
    c = kv.collection("m")
    c.set("a", {"x": 1})
    c.get("a")
    c.get("missing")
    c.has("a")
    c.list()
    return 1
"""


async def test_kv_calls_of_scripts_are_counted(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await daemon.deploy("kvuser", KV_SCRIPT)
    resp = await daemon.client.post("/api/v1/execute/kvuser")
    assert resp.status == 200, await resp.text()
    _, samples = await scrape(daemon)
    ops = {op: samples.get(("picloud_kv_operations_total", (("op", op),))) for op in OPS}
    assert ops == {"set": 1, "get": 2, "has": 1, "list": 1}
    assert samples[("picloud_kv_written_bytes_total", ())] >= len('{"x":1}')
    assert samples[("picloud_kv_read_bytes_total", ())] >= 2 * len('{"x":1}')
    # get "a" after its set, get "missing": two misses; has "a" then hits the cache.
    lookups = {
        result: samples.get(("picloud_kv_cache_lookups_total", (("result", result),)))
        for result in ("hit", "miss")
    }
    assert lookups == {"hit": 1, "miss": 2}
    assert samples[("picloud_kv_cache_entries", ())] == 2
    assert samples[("picloud_kv_cache_bytes", ())] > 0


OPS = ("set", "get", "has", "list")
