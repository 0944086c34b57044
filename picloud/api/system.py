"""Routes: GET /api/v1/admin/system, the board's and the daemon's health at a glance."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from picloud.api.common import API, doc, json_response
from picloud.ops import OPS, health
from picloud.state import DB
from picloud.store import retention as sql

__all__ = ["routes", "system_snapshot"]

routes = web.RouteTableDef()

_EXAMPLE = {
    "cpu": {"count": 4, "percent_per_core": [3.0, 1.0, 0.0, 2.0], "load": {"1m": 0.1}},
    "memory": {"total_bytes": 4096, "available_bytes": 2048, "swap_used_bytes": 0},
    "temperature_celsius": 48.3,
    "throttling": {"raw": "0x50000", "now": {"under_voltage": False}, "since_boot": {}},
    "disk": {"free_bytes": 1024, "written_bytes_per_day": 52428800},
    "database": {"size_bytes": 1024, "wal_bytes": 0, "free_bytes": 0},
    "uptime": {"daemon_s": 12.0, "system_s": 3600.0},
    "processes": {"daemon_rss_bytes": 1, "workers_rss_bytes": 1, "worker_processes": 3},
    "invocations": {"running": 0, "queued": 0},
    "memory_cgroup": False,
    "sandbox": None,
}


async def system_snapshot(app: web.Application) -> dict[str, Any]:
    """The health snapshot (read in a thread) with the database's page figures added."""
    from picloud.executor import EXECUTOR

    ops = app[OPS]
    # Looked up per request: the executor may be installed after ops started.
    ops.probe.executor = app[EXECUTOR] if EXECUTOR in app else None
    snap = await asyncio.to_thread(health.snapshot, ops.probe)
    pages = await app[DB].read(sql.page_stats)
    snap["database"].update(
        free_bytes=pages.free_bytes,
        page_size=pages.page_size,
        incremental_vacuum=pages.auto_vacuum == 2,
        schema=app[DB].schema_version,
    )
    return snap


@routes.get(f"{API}/admin/system")
@doc(
    "Board and daemon health: CPU, memory, temperature, throttling, disk, database, "
    "processes, invocations, sandbox layers. Fields the board lacks are null.",
    response=_EXAMPLE,
)
async def system(request: web.Request) -> web.Response:
    snap = await system_snapshot(request.app)
    ops = request.app[OPS]
    snap["retention"] = ops.retention.to_json()
    snap["backup"] = ops.backups.to_json()
    return json_response(snap)
