"""Invocation records: batched writes, filters, cursor pages, one by id with its log."""

from __future__ import annotations

import asyncio

import pytest

from picloud.executor import EXECUTOR
from picloud.state import DB
from tests.conftest import Daemon

HELLO = "def handle(ctx):\n    log.info('hi %s', ctx['request']['query'].get('n'))\n    return 1\n"
BAD = "def handle(ctx):\n    raise ValueError('nope')\n"
INV = "/api/v1/admin/invocations"


@pytest.fixture
async def home(daemon: Daemon) -> Daemon:
    await daemon.make_app("home")
    await daemon.deploy("hello", HELLO)
    await daemon.deploy("bad", BAD)
    return daemon


async def test_one_invocation_with_its_log(home: Daemon) -> None:
    resp = await home.client.get("/api/v1/execute/hello?n=7")
    inv_id = resp.headers["X-PiCloud-Invocation"]
    inv = await home.call("GET", f"{INV}/{inv_id}", expect=200)
    assert inv["id"] == inv_id
    assert (inv["app_id"], inv["script_id"], inv["version"]) == ("home", "hello", 1)
    assert (inv["trigger"], inv["status"], inv["http_status"]) == ("http", "ok", 200)
    assert inv["log"] == "INFO hi 7\n"
    assert inv["error"] is None
    assert inv["duration_ms"] > 0
    assert inv["cpu_ms"] is not None
    assert inv["peak_memory_kb"] > 0
    assert inv["cold_start_ms"] is not None  # the first run of the app forked its worker
    assert inv["started_at"] > 1_700_000_000_000
    resp = await home.client.get("/api/v1/execute/hello")
    again = await home.call("GET", f"{INV}/{resp.headers['X-PiCloud-Invocation']}", expect=200)
    assert again["cold_start_ms"] is None  # warm


async def test_failed_invocation_records_error_and_traceback(home: Daemon) -> None:
    resp = await home.client.get("/api/v1/execute/bad")
    inv = await home.call("GET", f"{INV}/{resp.headers['X-PiCloud-Invocation']}", expect=200)
    assert (inv["status"], inv["http_status"]) == ("script_error", 500)
    assert inv["error"] == "ValueError: nope"
    assert "Traceback" in inv["log"]


async def test_unknown_invocation_is_404(home: Daemon) -> None:
    body = await home.call("GET", f"{INV}/inv_nope", expect=404)
    assert body["error"]["code"] == "not_found"


async def test_list_filters_and_pages_newest_first(home: Daemon) -> None:
    for _ in range(5):
        await home.client.get("/api/v1/execute/hello")
    for _ in range(2):
        await home.client.get("/api/v1/execute/bad")
    everything = await home.call("GET", INV, expect=200)
    ids = [i["id"] for i in everything["items"]]
    assert len(ids) == 7
    assert ids == sorted(ids, reverse=True)
    assert "log" not in everything["items"][0]
    bad = await home.call("GET", f"{INV}?status=script_error", expect=200)
    assert [i["script_id"] for i in bad["items"]] == ["bad", "bad"]
    hello = await home.call("GET", f"{INV}?script=hello&app=home&trigger=http", expect=200)
    assert len(hello["items"]) == 5
    page1 = await home.call("GET", f"{INV}?limit=3", expect=200)
    page2 = await home.call("GET", f"{INV}?limit=3&cursor={page1['cursor']}", expect=200)
    page3 = await home.call("GET", f"{INV}?limit=3&cursor={page2['cursor']}", expect=200)
    paged = [i["id"] for p in (page1, page2, page3) for i in p["items"]]
    assert paged == ids
    assert page3["cursor"] is None


async def test_bad_filters_are_400(home: Daemon) -> None:
    for query in ("status=weird", "limit=0", "limit=x", "limit=100000"):
        body = await home.call("GET", f"{INV}?{query}", expect=400)
        assert body["error"]["code"] == "bad_request"


async def test_an_app_filter_naming_no_app_is_404_on_every_list(home: Daemon) -> None:
    """Invocations, dead letters and triggers answer an unknown ?app= alike."""
    for path in (INV, "/api/v1/admin/dead-letters", "/api/v1/admin/triggers"):
        body = await home.call("GET", f"{path}?app=nosuch", expect=404)
        assert body["error"]["code"] == "not_found", path
        assert "nosuch" in body["error"]["message"]
        await home.call("GET", f"{path}?app=home", expect=200)
        body = await home.call("GET", f"{path}?app=Not%20A%20Slug", expect=400)
        assert body["error"]["code"] == "bad_request", path


async def test_records_are_written_in_batches(home: Daemon) -> None:
    db = home.client.app[DB]
    recorder = home.client.app[EXECUTOR].recorder
    assert recorder is not None
    await recorder.flush()
    before = recorder.writes
    await asyncio.gather(*(home.client.get("/api/v1/execute/hello") for _ in range(40)))
    await recorder.flush()
    listed = await home.call("GET", f"{INV}?script=hello&limit=100", expect=200)
    assert len(listed["items"]) == 40
    # Never a write per run: 40 concurrent runs land in a few 200 ms batches.
    assert recorder.writes - before < 20
    assert recorder.largest_batch >= 5
    assert db.commits > 0


async def test_invocations_need_the_admin_token(home: Daemon) -> None:
    resp = await home.client.get(INV)
    assert resp.status == 401
