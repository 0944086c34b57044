"""PiCloud under test: `python -m picloud serve` on a free loopback port, and an admin client."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.procs import Server, free_port, start_server, wait_http

__all__ = ["ADMIN_TOKEN", "Admin", "BenchError", "start_picloud"]

ADMIN_TOKEN = "bench-admin-token-0123456789abcdef"
API = "/api/v1"


class BenchError(Exception):
    """A step of a benchmark could not run (the feature is missing or answered badly)."""


def start_picloud(state_dir: Path, log_path: Path, port: int | None = None) -> Server:
    port = port or free_port()
    state_dir.mkdir(parents=True, exist_ok=True)
    env = {
        "PICLOUD_BIND": f"127.0.0.1:{port}",
        "PICLOUD_STATE_DIR": str(state_dir),
        "PICLOUD_ADMIN_TOKEN": ADMIN_TOKEN,
        "PICLOUD_LOG_LEVEL": "warning",
    }
    return start_server("picloud", [sys.executable, "-m", "picloud", "serve"], env, port, log_path)


async def wait_ready(server: Server, within_s: float = 30.0) -> float:
    return await wait_http(server.base + "/healthz", within_s, server.proc)


class Admin:
    """The few admin and execute calls the benchmarks make, with clear failures."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=aiohttp.ClientTimeout(total=60),
        )

    async def close(self) -> None:
        await self.http.close()

    async def call(self, method: str, path: str, json: Any = None, expect: int = 200) -> Any:
        async with self.http.request(method, self.base + API + path, json=json) as resp:
            body = await resp.read()
            if resp.status != expect:
                raise BenchError(f"{method} {path} -> {resp.status}: {body[:300]!r}")
            return await resp.json() if body else None

    async def make_app(self, app: str) -> None:
        await self.call("POST", "/admin/apps", {"id": app}, expect=201)

    async def deploy(self, sid: str, source: str, app: str, **fields: Any) -> Any:
        body = {"id": sid, "app": app, "source": source, "public": True, **fields}
        return await self.call("POST", "/admin/scripts", body, expect=201)

    async def update(self, sid: str, source: str) -> Any:
        return await self.call("PUT", f"/admin/scripts/{sid}", {"source": source})

    async def execute(self, sid: str, query: str = "") -> tuple[int, Any, float]:
        """(status, decoded JSON or None, seconds) of one GET /execute/{sid}."""
        url = f"{self.base}{API}/execute/{sid}" + (f"?{query}" if query else "")
        t0 = time.perf_counter()
        async with self.http.get(url) as resp:
            body = await resp.read()
            elapsed = time.perf_counter() - t0
            doc = await resp.json() if body and resp.content_type == "application/json" else None
            return resp.status, doc, elapsed

    async def kv_get(self, app: str, coll: str, key: str) -> Any:
        async with self.http.get(f"{self.base}{API}/admin/apps/{app}/kv/{coll}/{key}") as resp:
            if resp.status == 404:
                return None
            if resp.status != 200:
                raise BenchError(f"kv get {coll}/{key} -> {resp.status}")
            return (await resp.json())["value"]

    async def kv_items(self, app: str, coll: str, cap: int = 100_000) -> list[dict[str, Any]]:
        """Every item of a collection, page by page through the admin API."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while len(items) < cap:
            params = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
            url = f"{self.base}{API}/admin/apps/{app}/kv/{coll}"
            async with self.http.get(url, params=params) as resp:
                if resp.status != 200:
                    raise BenchError(f"kv list {coll} -> {resp.status}: {await resp.text()}")
                doc = await resp.json()
            items.extend(doc["items"])
            cursor = doc.get("cursor")
            if not cursor:
                break
        return items

    async def trigger(self, app: str, coll: str, script: str) -> str:
        body = {
            "app": app,
            "kind": "kv",
            "collection": coll,
            "ops": ["insert", "update"],
            "script": script,
        }
        doc = await self.call("POST", "/admin/triggers", body, expect=201)
        return str(doc["id"])

    async def trigger_pending(self, trigger_id: str) -> int | None:
        """Pending + retrying events of a trigger, from the admin API's counts (None if absent)."""
        try:
            doc = await self.call("GET", f"/admin/triggers/{trigger_id}")
        except BenchError:
            return None
        return _pending_count(doc)


def _pending_count(doc: Any) -> int | None:
    """Find the pending (+ retrying) counts wherever the trigger document keeps them."""
    if not isinstance(doc, dict):
        return None
    if isinstance(doc.get("pending"), int):
        return int(doc["pending"]) + int(doc.get("retrying") or 0)
    for value in doc.values():
        if isinstance(value, dict) and (found := _pending_count(value)) is not None:
            return found
    return None
