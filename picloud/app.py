"""The app factory: wires settings, store, executor, KV, triggers and routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from picloud import executor, kv, ops, sdnotify, triggers
from picloud.api import (
    apps,
    backup,
    dashboard,
    deadletters,
    execute,
    fallback,
    health,
    invocations,
    kvadmin,
    metrics,
    openapi,
    scripts,
    system,
    triggeradmin,
)
from picloud.api.middleware import auth_middleware, error_middleware
from picloud.auth import ADMIN_TOKENS, AdminTokens, read_or_create_token
from picloud.config import Settings
from picloud.privileges import privileges_ctx
from picloud.state import DB, RUNTIME, SETTINGS, Runtime
from picloud.store import Database

__all__ = ["create_app"]

log = logging.getLogger("picloud")

ROUTE_TABLES = [
    health.routes,
    openapi.routes,
    apps.routes,
    scripts.routes,
    kvadmin.routes,
    triggeradmin.routes,
    deadletters.routes,
    invocations.routes,
    system.routes,
    backup.routes,
    metrics.routes,
    execute.routes,
    dashboard.routes,
    fallback.routes,  # last: the catch-all for unknown /api paths
]


def create_app(settings: Settings) -> web.Application:
    # The body caps are enforced per route (read_body); this is only aiohttp's own ceiling.
    ceiling = max(settings.max_admin_body_bytes, settings.max_execute_body_bytes) + 1024
    app = web.Application(middlewares=[error_middleware, auth_middleware], client_max_size=ceiling)
    app[SETTINGS] = settings
    app[RUNTIME] = Runtime()
    # Order matters: the zygote starts before the daemon opens the store or reads any
    # secret, so the heap every sandboxed child inherits holds none of them.
    app.cleanup_ctx.extend(
        [
            executor.zygote_ctx,
            privileges_ctx,
            _store_ctx,
            _token_ctx,
            executor.executor_ctx,
            kv.kv_ctx,
            triggers.triggers_ctx,
            ops.ops_ctx,
        ]
    )
    for table in ROUTE_TABLES:
        app.add_routes(table)
    return app


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    db = Database(settings.db_path, settings.durability)
    version = db.open(on_migration=sdnotify.migration_started)  # logs; EXTEND_TIMEOUT_USEC
    log.info("store: %s at schema %d (synchronous=%s)", db.path, version, settings.durability)
    app[DB] = db
    app[RUNTIME].store_ready = True
    yield
    app[RUNTIME].store_ready = False
    await db.close()


async def _token_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if settings.admin_token:
        log.info("auth: admin token set by PICLOUD_ADMIN_TOKEN")
    else:
        token, created = read_or_create_token(settings.state_dir)
        if created:
            # Printed once, to the terminal only (never through logging): the first start.
            print(  # noqa: T201
                f"PiCloud admin token (shown once; `picloud token` shows it again): {token}",
                flush=True,
            )
    app[ADMIN_TOKENS] = AdminTokens(settings.state_dir, settings.admin_token)
    yield
