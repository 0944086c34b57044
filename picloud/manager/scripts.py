"""Scripts and their versions: the operations behind the admin routes."""

from __future__ import annotations

import dataclasses
import sqlite3
from typing import Any

from picloud.api.common import Body
from picloud.config import Settings
from picloud.errors import BadRequest, Conflict, NotFound
from picloud.ids import check_slug
from picloud.manager.apps import require_app
from picloud.manager.source import check_source_off_loop
from picloud.store import Database
from picloud.store import scripts as store
from picloud.store.scripts import Script, ScriptSettings, Version

__all__ = [
    "CREATE_FIELDS",
    "ISOLATIONS",
    "UPDATE_FIELDS",
    "ScriptUpdate",
    "create_script",
    "delete_script",
    "get_script",
    "get_version",
    "parse_create",
    "parse_update",
    "rollback",
    "update_script",
]

ISOLATIONS = ("warm", "fresh")
UPDATE_FIELDS = ("source", "public", "timeout_ms", "memory_mb", "isolation")
CREATE_FIELDS = ("id", "app", *UPDATE_FIELDS)


@dataclasses.dataclass(frozen=True, slots=True)
class ScriptUpdate:
    """A PUT: a new source (a new version) and/or changed settings; None = unchanged."""

    source: str | None
    public: bool | None
    timeout_ms: int | None
    memory_mb: int | None
    isolation: str | None

    def apply(self, current: Script) -> ScriptSettings:
        return ScriptSettings(
            public=current.public if self.public is None else self.public,
            timeout_ms=self.timeout_ms or current.timeout_ms,
            memory_mb=self.memory_mb or current.memory_mb,
            isolation=self.isolation or current.isolation,
        )


def parse_update(data: dict[str, Any], settings: Settings) -> ScriptUpdate:
    body = Body(data, UPDATE_FIELDS)
    isolation = body.text("isolation", None)
    if isolation is not None and isolation not in ISOLATIONS:
        raise BadRequest("field 'isolation' must be 'warm' or 'fresh'")
    return ScriptUpdate(
        source=body.text("source", None, max_len=settings.max_script_source_bytes),
        public=body.boolean("public", None),
        timeout_ms=body.integer("timeout_ms", None, lo=1, hi=settings.max_timeout_ms),
        memory_mb=body.integer("memory_mb", None, lo=1, hi=settings.max_memory_mb),
        isolation=isolation,
    )


def parse_create(data: dict[str, Any], settings: Settings) -> tuple[str, str, str, ScriptSettings]:
    """(id, app, source, settings) of a POST, defaults filled in from Settings."""
    body = Body(data, CREATE_FIELDS)
    script_id = check_slug(body.text("id"), "id")
    app_id = check_slug(body.text("app"), "app")
    spec = parse_update({k: v for k, v in data.items() if k in UPDATE_FIELDS}, settings)
    if spec.source is None:
        raise BadRequest("field 'source' is required")
    cfg = ScriptSettings(
        public=bool(spec.public),
        timeout_ms=spec.timeout_ms or settings.default_timeout_ms,
        memory_mb=spec.memory_mb or settings.default_memory_mb,
        isolation=spec.isolation or "warm",
    )
    return script_id, app_id, spec.source, cfg


async def create_script(
    db: Database, script_id: str, app_id: str, source: str, cfg: ScriptSettings
) -> Script:
    await check_source_off_loop(script_id, source)

    def write(conn: sqlite3.Connection) -> Script:
        require_app(conn, app_id)
        script = store.create_script(conn, script_id, app_id, source, cfg)
        if script is None:
            raise Conflict(f"script '{script_id}' already exists")
        return script

    return await db.write(write)


async def get_script(db: Database, script_id: str) -> Script:
    script = await db.read(lambda c: store.get_script(c, script_id, with_source=True))
    if script is None:
        raise _missing(script_id)
    return script


async def update_script(
    db: Database, script_id: str, spec: ScriptUpdate, keep_versions: int
) -> Script:
    """Applies the changed settings and, when a source is given, makes it a new version."""
    if spec.source is not None:
        await check_source_off_loop(script_id, spec.source)

    def write(conn: sqlite3.Connection) -> Script:
        current = _current(conn, script_id)
        store.update_settings(conn, script_id, spec.apply(current))
        if spec.source is not None:
            store.add_version(conn, script_id, spec.source)
            store.prune_versions(conn, script_id, keep_versions)
        return _current(conn, script_id)

    return await db.write(write)


async def rollback(db: Database, script_id: str, version: int, keep_versions: int) -> Script:
    """A new version carrying `version`'s source (the history only ever grows)."""

    def write(conn: sqlite3.Connection) -> Script:
        _current(conn, script_id)
        if store.rollback(conn, script_id, version) is None:
            raise NotFound(f"script '{script_id}' has no version {version}")
        store.prune_versions(conn, script_id, keep_versions)
        return _current(conn, script_id)

    return await db.write(write)


async def delete_script(db: Database, script_id: str) -> None:
    if not await db.write(lambda c: store.delete_script(c, script_id)):
        raise _missing(script_id)


async def get_version(db: Database, script_id: str, version: int) -> Version:
    def read(conn: sqlite3.Connection) -> Version:
        _current(conn, script_id)
        found = store.get_version(conn, script_id, version)
        if found is None:
            raise NotFound(f"script '{script_id}' has no version {version}")
        return found

    return await db.read(read)


def _current(conn: sqlite3.Connection, script_id: str) -> Script:
    script = store.get_script(conn, script_id, with_source=True)
    if script is None:
        raise _missing(script_id)
    return script


def _missing(script_id: str) -> NotFound:
    return NotFound(f"script '{script_id}' does not exist")
