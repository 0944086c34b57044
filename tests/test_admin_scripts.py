"""Admin API: scripts, their versions and rollback, against the real daemon."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from picloud.app import create_app
from picloud.config import Settings
from tests.conftest import ADMIN_TOKEN, Daemon

SCRIPTS = "/api/v1/admin/scripts"
V1 = "def handle(ctx):\n    return 1\n"
V2 = "def handle(ctx):\n    return 2\n"


async def _create(daemon: Daemon, expect: int, **fields: Any) -> Any:
    body = {"id": "hello", "app": "home", "source": V1, **fields}
    return await daemon.call("POST", SCRIPTS, json=body, expect=expect)


async def test_create_with_defaults_and_get_with_source(daemon: Daemon) -> None:
    await daemon.make_app("home")
    created = await _create(daemon, 201)
    assert created["id"] == "hello"
    assert created["version"] == 1
    assert created["app"] == "home"
    assert created["public"] is False
    assert (created["timeout_ms"], created["memory_mb"]) == (5000, 64)
    assert created["isolation"] == "warm"
    assert created["sha256"] == hashlib.sha256(V1.encode()).hexdigest()
    got = await daemon.call("GET", f"{SCRIPTS}/hello", expect=200)
    assert got["source"] == V1
    assert got["version"] == 1


async def test_create_with_every_field(daemon: Daemon) -> None:
    await daemon.make_app("home")
    fields = {"public": True, "timeout_ms": 60000, "memory_mb": 512, "isolation": "fresh"}
    created = await _create(daemon, 201, **fields)
    assert {k: created[k] for k in fields} == fields


@pytest.mark.parametrize(
    ("fields", "word"),
    [
        ({"timeout_ms": 60001}, "timeout_ms"),
        ({"timeout_ms": 0}, "timeout_ms"),
        ({"memory_mb": 513}, "memory_mb"),
        ({"memory_mb": "64"}, "memory_mb"),
        ({"isolation": "hot"}, "isolation"),
        ({"public": "yes"}, "public"),
        ({"id": "Hello"}, "id"),
        ({"id": "../x"}, "id"),
        ({"app": "HOME"}, "app"),
        ({"source": 1}, "source"),
        ({"extra": 1}, "extra"),
    ],
)
async def test_create_refuses_bad_fields(daemon: Daemon, fields: dict[str, Any], word: str) -> None:
    await daemon.make_app("home")
    body = await _create(daemon, 400, **fields)
    assert body["error"]["code"] == "bad_request"
    assert word in body["error"]["message"]


async def test_create_needs_id_app_source(daemon: Daemon) -> None:
    await daemon.make_app("home")
    for missing in ("id", "app", "source"):
        body = {"id": "hello", "app": "home", "source": V1}
        del body[missing]
        err = await daemon.call("POST", SCRIPTS, json=body, expect=400)
        assert missing in err["error"]["message"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("x = 1\n\ndef handle(ctx:\n    return 1\n", "line 3: "),
        ("def handle(ctx):\n    return 1\n  oops\n", "line 3: "),
        ("def handle(ctx):\n    return (\n", "line 2: "),
        ("x = 1\n", "handle"),
        ("def handle():\n    return 1\n", "line 1: handle must accept one argument"),
        ("\n\nasync def handle(ctx):\n    return 1\n", "line 3: "),
        ("def handle(ctx):\n    return 1\x00\n", "line "),
    ],
)
async def test_compile_check_names_the_line(daemon: Daemon, source: str, message: str) -> None:
    await daemon.make_app("home")
    body = await _create(daemon, 400, source=source)
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == "bad_request"
    assert body["error"]["message"].startswith(message) or message in body["error"]["message"]
    await daemon.call("GET", f"{SCRIPTS}/hello", expect=404)


async def test_source_cap_is_413(daemon: Daemon) -> None:
    await daemon.make_app("home")
    cap = daemon.settings.max_script_source_bytes
    big = V1 + "#" * (cap - len(V1) + 1)
    body = await _create(daemon, 413, source=big)
    assert body["error"]["code"] == "payload_too_large"
    await _create(daemon, 201, source=big[:cap])


async def test_duplicate_id_is_409_even_in_another_app(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await daemon.make_app("other")
    await _create(daemon, 201)
    body = await _create(daemon, 409, app="other")
    assert body["error"]["code"] == "conflict"


async def test_unknown_app_is_404(daemon: Daemon) -> None:
    body = await _create(daemon, 404, app="nope")
    assert "nope" in body["error"]["message"]
    await daemon.call("GET", SCRIPTS, params={"app": "nope"}, expect=404)


async def test_update_makes_a_new_version_and_changes_settings(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await _create(daemon, 201)
    updated = await daemon.call("PUT", f"{SCRIPTS}/hello", json={"source": V2}, expect=200)
    assert updated["version"] == 2
    assert updated["source"] == V2
    same = await daemon.call("PUT", f"{SCRIPTS}/hello", json={"public": True, "timeout_ms": 7})
    assert (same["version"], same["public"], same["timeout_ms"]) == (2, True, 7)
    assert same["memory_mb"] == 64
    got = await daemon.call("GET", f"{SCRIPTS}/hello", expect=200)
    assert (got["source"], got["public"], got["timeout_ms"]) == (V2, True, 7)


async def test_update_with_bad_source_keeps_the_current_version(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await _create(daemon, 201)
    body = await daemon.call("PUT", f"{SCRIPTS}/hello", json={"source": "def handle(:\n"})
    assert body["error"]["code"] == "bad_request"
    assert body["error"]["message"].startswith("line 1: ")
    got = await daemon.call("GET", f"{SCRIPTS}/hello", expect=200)
    assert (got["version"], got["source"]) == (1, V1)


async def test_update_unknown_script_is_404_and_fields_are_checked(daemon: Daemon) -> None:
    await daemon.call("PUT", f"{SCRIPTS}/nope", json={"source": V1}, expect=404)
    await daemon.make_app("home")
    await _create(daemon, 201)
    await daemon.call("PUT", f"{SCRIPTS}/hello", json={"id": "x"}, expect=400)
    await daemon.call("PUT", f"{SCRIPTS}/hello", json={"memory_mb": 10**9}, expect=400)


async def test_versions_list_get_and_rollback(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await _create(daemon, 201)
    await daemon.call("PUT", f"{SCRIPTS}/hello", json={"source": V2}, expect=200)
    rolled = await daemon.call("POST", f"{SCRIPTS}/hello/rollback", json={"version": 1})
    assert rolled["version"] == 3
    assert rolled["source"] == V1
    versions = await daemon.call("GET", f"{SCRIPTS}/hello/versions", expect=200)
    assert [v["version"] for v in versions["items"]] == [1, 2, 3]
    assert versions["items"][2]["rollback_of"] == 1
    assert versions["items"][0]["sha256"] == versions["items"][2]["sha256"]
    assert versions["cursor"] is None
    one = await daemon.call("GET", f"{SCRIPTS}/hello/versions/2", expect=200)
    assert (one["version"], one["source"]) == (2, V2)
    got = await daemon.call("GET", f"{SCRIPTS}/hello", expect=200)
    assert (got["version"], got["source"]) == (3, V1)


async def test_versions_paginate(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await _create(daemon, 201)
    for n in range(2, 6):
        await daemon.call("PUT", f"{SCRIPTS}/hello", json={"source": V1 + f"# {n}\n"})
    seen, cursor = [], None
    for _ in range(5):
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        got = await daemon.call("GET", f"{SCRIPTS}/hello/versions", params=params, expect=200)
        seen += [v["version"] for v in got["items"]]
        cursor = got["cursor"]
        if cursor is None:
            break
    assert seen == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("body", [{"version": 9}, {"version": 0}, {"version": "1"}, {}, {"v": 1}])
async def test_rollback_refuses_bad_versions(daemon: Daemon, body: dict[str, Any]) -> None:
    await daemon.make_app("home")
    await _create(daemon, 201)
    resp = await daemon.call("POST", f"{SCRIPTS}/hello/rollback", json=body)
    assert resp["error"]["code"] in ("bad_request", "not_found")
    got = await daemon.call("GET", f"{SCRIPTS}/hello", expect=200)
    assert got["version"] == 1


async def test_bad_version_paths(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await _create(daemon, 201)
    for version in ("0", "x", "-1", "99", "1.5", "9" * 30):
        resp = await daemon.client.get(
            f"{SCRIPTS}/hello/versions/{version}", headers=daemon.headers
        )
        assert resp.status in (400, 404), version
    await daemon.call("GET", f"{SCRIPTS}/nope/versions", expect=404)
    await daemon.call("GET", f"{SCRIPTS}/nope/versions/1", expect=404)
    await daemon.call("POST", f"{SCRIPTS}/nope/rollback", json={"version": 1}, expect=404)


async def test_old_versions_are_pruned_but_the_current_kept(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await _create(daemon, 201)
    keep = daemon.settings.script_versions_keep
    with sqlite3.connect(daemon.settings.db_path) as conn:
        conn.execute("UPDATE scripts SET version = ? WHERE id = 'hello'", (keep + 5,))
        conn.execute(
            "UPDATE script_versions SET version = ? WHERE script_id = 'hello'", (keep + 5,)
        )
    await daemon.call("PUT", f"{SCRIPTS}/hello", json={"source": V2}, expect=200)
    await daemon.call("PUT", f"{SCRIPTS}/hello", json={"source": V1}, expect=200)
    versions = await daemon.call("GET", f"{SCRIPTS}/hello/versions", expect=200)
    assert [v["version"] for v in versions["items"]] == [keep + 5, keep + 6, keep + 7]
    await daemon.call("POST", f"{SCRIPTS}/hello/rollback", json={"version": 1}, expect=404)


async def test_list_scripts_filtered_by_app_without_sources(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await daemon.make_app("other")
    await daemon.deploy("b", V1, app="home")
    await daemon.deploy("a", V1, app="home")
    await daemon.deploy("c", V1, app="other")
    everything = await daemon.call("GET", SCRIPTS, expect=200)
    assert [s["id"] for s in everything["items"]] == ["a", "b", "c"]
    assert all("source" not in s for s in everything["items"])
    empty_filter = await daemon.call("GET", SCRIPTS, params={"app": ""}, expect=200)
    assert empty_filter == everything
    home = await daemon.call("GET", SCRIPTS, params={"app": "home"}, expect=200)
    assert [s["id"] for s in home["items"]] == ["a", "b"]
    first = await daemon.call("GET", SCRIPTS, params={"limit": "1"}, expect=200)
    nxt = await daemon.call("GET", SCRIPTS, params={"limit": "5", "cursor": first["cursor"]})
    assert [s["id"] for s in nxt["items"]] == ["b", "c"]
    assert nxt["cursor"] is None


async def test_delete_script(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await _create(daemon, 201)
    await daemon.call("DELETE", f"{SCRIPTS}/hello", expect=204)
    await daemon.call("GET", f"{SCRIPTS}/hello", expect=404)
    await daemon.call("DELETE", f"{SCRIPTS}/hello", expect=404)
    with sqlite3.connect(daemon.settings.db_path) as conn:
        assert conn.execute("SELECT count(*) FROM script_versions").fetchone() == (0,)
    again = await _create(daemon, 201, source=V2)
    assert again["version"] == 1


async def test_runs_follow_updates_rollbacks_and_recreation(daemon: Daemon) -> None:
    """What runs is always the current version, even after delete and re-create at v1."""
    await daemon.make_app("home")

    async def run() -> Any:
        resp = await daemon.client.get("/api/v1/execute/hello")
        assert resp.status == 200, await resp.text()
        return await resp.json()

    await _create(daemon, 201, public=True)
    assert await run() == 1
    await daemon.call("PUT", f"{SCRIPTS}/hello", json={"source": V2}, expect=200)
    assert await run() == 2
    await daemon.call("POST", f"{SCRIPTS}/hello/rollback", json={"version": 1}, expect=200)
    assert await run() == 1
    await daemon.call("DELETE", f"{SCRIPTS}/hello", expect=204)
    resp = await daemon.client.get("/api/v1/execute/hello")
    assert resp.status == 404
    await _create(daemon, 201, public=True, source=V2)
    assert await run() == 2


def _big_source(size: int, tail: str = "") -> str:
    lines = ["def handle(ctx):\n    return 1\n"]
    n = 0
    while sum(map(len, lines)) < size - 200:
        lines.append(f"x{n} = {{'a': [{n}, {n + 1}, 's'], 'b': ({n}, 'x')}}\n")
        n += 1
    return "".join(lines) + tail


async def test_large_source_error_names_the_line(daemon: Daemon) -> None:
    await daemon.make_app("home")
    source = _big_source(200 * 1024, tail="def broken(:\n")
    line = source.count("\n")
    body = await _create(daemon, 400, source=source)
    assert body["error"]["message"].startswith(f"line {line}: ")
    missing = _big_source(100 * 1024).replace("def handle", "def other")
    body = await _create(daemon, 400, source=missing)
    assert "handle" in body["error"]["message"]


@pytest.mark.slow
async def test_compiling_a_large_source_does_not_stall_the_loop(tmp_path: Path) -> None:
    """compile() holds the GIL, so a big source is checked in a child process."""
    settings = Settings(
        bind="127.0.0.1:0",
        state_dir=tmp_path / "state",
        admin_token=ADMIN_TOKEN,
        max_script_source_bytes=1024 * 1024,
    )
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as client:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        await client.post("/api/v1/admin/apps", json={"id": "home"}, headers=headers)
        gaps: list[float] = []

        async def ticker() -> None:
            last = time.perf_counter()
            while True:
                await asyncio.sleep(0.01)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        body = {"id": "big", "app": "home", "source": _big_source(512 * 1024)}
        task = asyncio.create_task(ticker())
        try:
            started = time.perf_counter()
            resp = await client.post("/api/v1/admin/scripts", json=body, headers=headers)
            took = time.perf_counter() - started
        finally:
            task.cancel()
        assert resp.status == 201, await resp.text()
    # Inline, the loop would stand still for most of the deploy.
    assert max(gaps) < max(0.5, took / 2), (max(gaps), took)
