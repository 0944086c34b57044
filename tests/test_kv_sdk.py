"""The script SDK's kv end to end: real daemon, real sandboxed workers, real SQLite."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

from tests.conftest import Daemon

TOUR = """
from picloud.sdk import kv as sdk_kv

def handle(ctx):
    assert sdk_kv is kv  # the global and the import are the same module
    w = kv.collection("widgets")
    out = {"name": w.name, "before": w.get("k"), "has_before": w.has("k")}
    w.set("k", {"n": 1, "s": "é"})
    out["after"] = w.get("k")
    w.set("none", None)
    out["none_has"] = w.has("none")
    out["none_get"] = w.get("none")
    out["incr"] = [w.incr("c"), w.incr("c", 10), w.incr("c", by=-1)]
    out["list"] = w.list()
    out["deleted"] = [w.delete("k"), w.delete("k")]
    return out
"""


async def _run(daemon: Daemon, script: str, **params: Any) -> Any:
    resp = await daemon.client.post(f"/api/v1/execute/{script}", json=params)
    body = await resp.read()
    assert resp.status == 200, body
    return json.loads(body)


async def test_the_whole_sdk_in_a_script(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await daemon.deploy("tour", TOUR)
    out = await _run(daemon, "tour")
    assert out == {
        "name": "widgets",
        "before": None,
        "has_before": False,
        "after": {"n": 1, "s": "é"},
        "none_has": True,
        "none_get": None,
        "incr": [1, 11, 10],
        "list": {
            "items": [
                {"key": "c", "value": 10},
                {"key": "k", "value": {"n": 1, "s": "é"}},
                {"key": "none", "value": None},
            ],
            "cursor": None,
        },
        "deleted": [True, False],
    }
    # The script's writes are the admin API's data: one store.
    page = await daemon.call("GET", "/api/v1/admin/apps/home/kv/widgets", expect=200)
    assert [i["key"] for i in page["items"]] == ["c", "none"]


ERRORS = """
def handle(ctx):
    w = kv.collection("w")
    cases = {
        "empty collection": lambda: kv.collection(""),
        "bad collection": lambda: kv.collection("a b"),
        "collection type": lambda: kv.collection(None),
        "empty key": lambda: w.get(""),
        "long key": lambda: w.set("k" * 513, 1),
        "key type": lambda: w.has(1),
        "not json": lambda: w.set("k", object()),
        "set value": lambda: w.set("k", {1, 2}),
        "nan": lambda: w.set("k", float("nan")),
        "too large": lambda: w.set("k", "x" * 2000),
        "ttl": lambda: w.set("k", 1, ttl=-5),
        "limit": lambda: w.list(limit=0),
        "limit type": lambda: w.list(limit="9"),
        "cursor": lambda: w.list(cursor="nope"),
        "incr type": lambda: (w.set("s", "text"), w.incr("s")),
        "incr by": lambda: w.incr("n", by=1.5),
    }
    out = {}
    for name, fn in cases.items():
        try:
            fn()
            out[name] = None
        except Exception as exc:
            out[name] = [type(exc).__name__, str(exc)]
    return out
"""


async def test_wrong_use_raises_builtin_exceptions(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await daemon.deploy("errors", ERRORS)
    out = await _run(daemon, "errors")
    kinds = {name: got[0] if got else None for name, got in out.items()}
    assert kinds == {
        "empty collection": "ValueError",
        "bad collection": "ValueError",
        "collection type": "TypeError",
        "empty key": "ValueError",
        "long key": "ValueError",
        "key type": "TypeError",
        "not json": "TypeError",
        "set value": "TypeError",
        "nan": "ValueError",
        "too large": None,  # 2002 bytes is far below the 1 MiB default
        "ttl": "ValueError",
        "limit": "ValueError",
        "limit type": "TypeError",
        "cursor": "ValueError",
        "incr type": "TypeError",
        "incr by": "TypeError",
    }
    assert "[A-Za-z0-9_.-]{1,64}" in out["bad collection"][1]
    assert "513 UTF-8 bytes; the limit is 512" in out["long key"][1]
    assert "not an int" in out["incr type"][1]


LIMITS = """
def handle(ctx):
    w = kv.collection("w")
    out = {}
    for name, fn in {
        "too large": lambda: w.set("big", "x" * 300),
        "quota": lambda: [w.set(f"k{n}", "x" * 100) for n in range(100)],
    }.items():
        try:
            fn()
            out[name] = None
        except Exception as exc:
            out[name] = [type(exc).__name__, str(exc)]
    return out
"""


async def test_value_limit_and_quota_are_value_errors(daemon: Daemon) -> None:
    # The size limits come from the daemon's settings: only the daemon checks them.
    import dataclasses

    from picloud.kv import KV

    await daemon.make_app("home")
    await daemon.deploy("limits", LIMITS)
    kv = daemon.client.server.app[KV]
    kv.max_value_bytes, kv.quota_bytes = 256, 1000  # type: ignore[attr-defined]
    out = await _run(daemon, "limits")
    assert out["too large"] == [
        "ValueError",
        "value is 302 bytes encoded as JSON; the limit is 256",
    ]
    assert out["quota"][0] == "ValueError"
    assert out["quota"][1].startswith("quota exceeded: app 'home' holds")
    assert dataclasses.is_dataclass(daemon.settings)


ISOLATION = """
from picloud.sdk import _channel

def handle(ctx):
    w = kv.collection("shared")
    before = w.get("k")
    w.set("k", ctx["app_id"])
    victim = "other" if ctx["app_id"] == "home" else "home"
    forged = {}
    for name, args in {
        "app arg": {"collection": "shared", "key": "k", "app": victim},
        "app_id arg": {"collection": "shared", "key": "k", "app_id": victim},
    }.items():
        try:
            forged[name] = _channel.call("kv.get", args)
        except Exception as exc:
            forged[name] = type(exc).__name__
    try:
        _channel.channel.send({"t": "call", "id": 999, "op": "kv.set", "app": victim,
                               "args": {"collection": "shared", "key": "k", "value": '"pwned"'}})
        reply = _channel.channel.recv()
        forged["frame app"] = reply.get("err", {}).get("type")
    except Exception as exc:
        forged["frame app"] = type(exc).__name__
    return {"before": before, "after": w.get("k"), "forged": forged}
"""


async def test_apps_are_isolated_and_forged_frames_refused(daemon: Daemon) -> None:
    for app in ("home", "other"):
        await daemon.make_app(app)
        await daemon.deploy(f"iso-{app}", ISOLATION, app=app)
    home = await _run(daemon, "iso-home")
    other = await _run(daemon, "iso-other")
    assert (home["before"], home["after"]) == (None, "home")
    assert (other["before"], other["after"]) == (None, "other")
    for out in (home, other):
        assert set(out["forged"].values()) <= {"PermissionError", "ValueError", "TypeError"}
        assert len(out["forged"]) == 3
    again = await _run(daemon, "iso-home")
    assert again["before"] == "home"
    for app, expected in (("home", "home"), ("other", "other")):
        got = await daemon.call("GET", f"/api/v1/admin/apps/{app}/kv/shared/k", expect=200)
        assert got["value"] == expected


PAGES = """
def handle(ctx):
    w = kv.collection("pages")
    for n in range(250):
        w.set(f"item:{n:03}", n)
    w.set("other", 0)
    seen, cursor, pages = [], None, 0
    while True:
        page = w.list(prefix="item:", limit=100, cursor=cursor)
        seen += [i["value"] for i in page["items"]]
        pages += 1
        cursor = page["cursor"]
        if cursor is None:
            break
    return {"seen": seen, "pages": pages}
"""


async def test_paging_from_a_script(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await daemon.deploy("pages", PAGES)
    out = await _run(daemon, "pages")
    assert out == {"seen": list(range(250)), "pages": 3}


TTL = """
import time

def handle(ctx):
    w = kv.collection("ttl")
    w.set("t", "soon gone", ttl=0.5)
    first = [w.get("t"), w.has("t"), len(w.list()["items"])]
    time.sleep(0.6)
    return {"first": first, "later": [w.get("t"), w.has("t"), len(w.list()["items"])]}
"""


async def test_ttl_from_a_script(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await daemon.deploy("ttl", TTL)
    out = await _run(daemon, "ttl")
    assert out == {"first": ["soon gone", True, 1], "later": [None, False, 0]}


COUNTER = """
def handle(ctx):
    return kv.collection("c").incr("hits")
"""


async def test_concurrent_incr_from_many_invocations(daemon: Daemon) -> None:
    import asyncio

    await daemon.make_app("home")
    await daemon.deploy("counter", COUNTER)

    async def hit() -> int:
        resp = await daemon.client.post("/api/v1/execute/counter")
        assert resp.status == 200, await resp.text()
        return int(await resp.json())

    results = await asyncio.gather(*(hit() for _ in range(40)))
    assert sorted(results) == list(range(1, 41))


ROUND_TRIPS = """
import time

def handle(ctx):
    w = kv.collection("bench")
    w.set("k", {"n": 1})
    n = 2000
    t0 = time.perf_counter()
    for _ in range(n):
        w.get("k")
    return {"get_per_s": n / (time.perf_counter() - t0)}
"""


async def test_get_round_trips_are_fast(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await daemon.deploy("rt", ROUND_TRIPS)
    t0 = time.perf_counter()
    out = await _run(daemon, "rt")
    # A loose floor for a shared test machine; the bench measures the real figure.
    assert out["get_per_s"] > 500, out
    assert time.perf_counter() - t0 < 10


def _doc_examples() -> list[str]:
    text = (Path(__file__).parent.parent / "docs" / "sdk.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


async def test_every_sdk_doc_example_runs(daemon: Daemon) -> None:
    examples = _doc_examples()
    assert len(examples) >= 10
    await daemon.make_app("home")
    await daemon.call("PUT", "/api/v1/admin/apps/home/secrets/api_token", json={"value": "s"})
    for n, source in enumerate(examples):
        await daemon.deploy(f"doc-{n}", source)
        resp = await daemon.client.post(f"/api/v1/execute/doc-{n}/kitchen?unit=F", json={"t": 21.5})
        body = await resp.read()
        assert resp.status in (200, 201, 204), (n, source[:200], body)
    # Spot checks of what the examples promise in their comments.
    outputs = {}
    for n, source in enumerate(examples):
        if "set, get" in source or 'widgets.set("w1"' in source or "ttl=1.0" in source:
            resp = await daemon.client.post(f"/api/v1/execute/doc-{n}")
            outputs[n] = await resp.json()
    assert {"before": True, "after": False} in outputs.values()
    widgets = next(o for o in outputs.values() if "w1" in o)
    assert widgets == {
        "w1": {"name": "sprocket", "sizes": [1, 2, 3], "price": 2.5, "sold": False},
        "missing": None,
        "nothing": None,
        "has_nothing": True,
        "deleted": True,
        "deleted_again": False,
    }


ODD_JSON = """
import math
from picloud.sdk import _channel

def handle(ctx):
    w = kv.collection("odd")
    # Texts only a hand-made call can store: valid JSON that msgspec refuses to decode.
    _channel.call("kv.set", {"collection": "odd", "key": "big", "value": "1e400"})
    _channel.call("kv.set", {"collection": "odd", "key": "lone", "value": '"\\\\ud800"'})
    big, lone = w.get("big"), w.get("lone")
    return {
        "big": math.isinf(big),
        "lone": lone == "\\ud800",
        "listed": len(w.list()["items"]),
    }
"""


async def test_values_msgspec_refuses_still_decode(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await daemon.deploy("odd", ODD_JSON)
    assert await _run(daemon, "odd") == {"big": True, "lone": True, "listed": 2}


READER = """
def handle(ctx):
    w = kv.collection("shared")
    return [w.get("k"), w.get("k"), w.has("k")]
"""


async def test_admin_writes_show_in_the_next_script_read(daemon: Daemon) -> None:
    # The daemon caches what scripts read; an admin change must still show at once.
    await daemon.make_app("home")
    await daemon.deploy("reader", READER)
    url = "/api/v1/admin/apps/home/kv/shared/k"
    assert await _run(daemon, "reader") == [None, None, False]
    for value in (1, {"n": 2}, None):
        await daemon.call("PUT", url, json={"value": value}, expect=200)
        assert await _run(daemon, "reader") == [value, value, True]
    await daemon.call("DELETE", url, expect=204)
    assert await _run(daemon, "reader") == [None, None, False]
    await daemon.call("PUT", url, json={"value": "short", "ttl": 0.3}, expect=200)
    assert await _run(daemon, "reader") == ["short", "short", True]
    await asyncio.sleep(0.4)
    assert await _run(daemon, "reader") == [None, None, False]
    # Deleting the app drops its values with it, cached or not.
    await daemon.call("PUT", url, json={"value": "old"}, expect=200)
    assert (await _run(daemon, "reader"))[0] == "old"
    await daemon.call("DELETE", "/api/v1/admin/apps/home", expect=204)
    await daemon.make_app("home")
    await daemon.deploy("reader", READER)
    assert await _run(daemon, "reader") == [None, None, False]
