"""Routes: GET /metrics in the Prometheus text format (admin token unless metrics_public)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from picloud.api.common import doc
from picloud.api.system import system_snapshot
from picloud.auth import ADMIN_TOKENS, bearer
from picloud.errors import Unauthorized
from picloud.ops import OPS, Ops
from picloud.state import DB, SETTINGS
from picloud.store import retention as sql

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.get("/metrics")
@doc("Prometheus metrics (text format); needs the admin token unless metrics_public is on.")
async def metrics(request: web.Request) -> web.StreamResponse:
    app = request.app
    # /metrics is outside /api/v1/admin, so the auth middleware does not cover it.
    if not app[SETTINGS].metrics_public:
        token = bearer(request)
        if token is None or not app[ADMIN_TOKENS].matches(token):
            raise Unauthorized("a valid admin token is required (Authorization: Bearer ...)")
    # prometheus_client loads on the first scrape, not with the daemon (docs/performance.md).
    from picloud.ops.metrics import ScrapeCollector, respond

    ops, db = app[OPS], app[DB]
    await ops.telemetry.catch_up(db)
    snap = await system_snapshot(app)
    figures = await db.read(sql.store_figures)
    collector = ScrapeCollector(snap, figures, db, _extra(ops) | _kv_cache(app), _triggers(app))
    return await respond(request, collector, ops.telemetry)


def _triggers(app: web.Application) -> dict[str, Any] | None:
    from picloud.triggers import DISPATCHER

    return app[DISPATCHER].stats.snapshot() if DISPATCHER in app else None


def _kv_cache(app: web.Application) -> dict[str, tuple[str, Any]]:
    """The KV read cache's figures (docs/storage.md), to size `kv_read_cache_bytes` by."""
    from picloud.kv import KV

    cache = getattr(app[KV], "cache", None) if KV in app else None
    if cache is None:
        return {}
    return {
        "picloud_kv_cache_lookups_total": (
            "Script and admin reads of one key, by whether the read cache had it.",
            {"result": {"hit": cache.hits, "miss": cache.misses}},
        ),
        "picloud_kv_cache_entries": ("Keys held by the KV read cache.", len(cache)),
        "picloud_kv_cache_bytes": ("Bytes the KV read cache holds, by its count.", cache.used),
    }


def _extra(ops: Ops) -> dict[str, tuple[str, Any]]:
    r, b, kv = ops.retention, ops.backups, ops.kv
    return {
        "picloud_kv_operations_total": ("KV calls served to scripts, by op.", {"op": dict(kv.ops)}),
        "picloud_kv_written_bytes_total": ("JSON bytes of values scripts set.", kv.written_bytes),
        "picloud_kv_read_bytes_total": ("JSON bytes of values scripts read.", kv.read_bytes),
        "picloud_retention_pruned_rows_total": (
            "Rows removed by retention, by table.",
            {"table": dict(r.pruned)},
        ),
        "picloud_retention_vacuumed_pages_total": (
            "Pages given back by incremental vacuum.",
            r.vacuumed_pages,
        ),
        "picloud_retention_last_run_timestamp_seconds": ("Last retention pass.", r.last_run_at),
        "picloud_backups_total": (
            "Backups made by this daemon, by result.",
            {"result": {"ok": b.successes, "error": b.failures}},
        ),
        "picloud_backup_last_success_timestamp_seconds": ("Last good backup.", b.last_success_at),
        "picloud_backup_last_size_bytes": ("Size of the last good backup.", b.last_size_bytes),
    }
