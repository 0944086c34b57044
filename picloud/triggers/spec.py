"""Trigger definitions from admin JSON: validation, creation and changes, in one write each."""

from __future__ import annotations

import sqlite3
from typing import Any

from picloud.api.common import Body
from picloud.errors import BadRequest, NotFound
from picloud.ids import check_collection, check_slug, new_id
from picloud.store.apps import app_exists
from picloud.store.db import now_ms
from picloud.store.triggers import (
    Trigger,
    get_trigger,
    insert_trigger,
    script_app,
    update_trigger,
)
from picloud.triggers.cron import check_schedule, check_timezone

__all__ = ["OPS", "create_trigger", "patch_trigger"]

OPS = ("insert", "update", "delete")
_COMMON = ("script", "dead_letter_script", "max_attempts", "backoff_base_ms", "backoff_max_ms")
_CREATE = ("app", "kind", "enabled", *_COMMON)
_KV = ("collection", "ops")
_CRON = ("schedule", "timezone")
_MAX_ATTEMPTS = 100
_MAX_BACKOFF_MS = 24 * 3600 * 1000


def _ops(value: object) -> str:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise BadRequest("field 'ops' must be a non-empty list of insert, update, delete")
    bad = [v for v in value if v not in OPS]
    if bad:
        raise BadRequest(f"unknown op(s) {bad!r:.80}; ops are insert, update, delete")
    if len(set(value)) != len(value):
        raise BadRequest("field 'ops' lists an op twice")
    return ",".join(op for op in OPS if op in value)  # stored in a fixed order


def _script_in_app(conn: sqlite3.Connection, field: str, script_id: object, app_id: str) -> str:
    sid = check_slug(script_id, field)
    owner = script_app(conn, sid)
    if owner is None:
        raise BadRequest(f"{field} '{sid}' does not exist")
    if owner != app_id:
        raise BadRequest(f"{field} '{sid}' belongs to another app, not to '{app_id}'")
    return sid


def _backoff(body: Body, base: int, cap: int) -> tuple[int, int]:
    base = body.integer("backoff_base_ms", base, lo=1, hi=_MAX_BACKOFF_MS)
    cap = body.integer("backoff_max_ms", cap, lo=1, hi=_MAX_BACKOFF_MS)
    if base > cap:
        raise BadRequest("backoff_base_ms must not exceed backoff_max_ms")
    return base, cap


def create_trigger(conn: sqlite3.Connection, data: dict[str, Any]) -> Trigger:
    """Validate a POST body against the store and insert the trigger (inside one write)."""
    kind = data.get("kind")
    if kind not in ("kv", "cron"):
        raise BadRequest(f"field 'kind' must be 'kv' or 'cron', got {kind!r:.40}")
    body = Body(data, (*_CREATE, *(_KV if kind == "kv" else _CRON)))
    app_id = check_slug(body.text("app"), "app")
    if not app_exists(conn, app_id):
        raise NotFound(f"app '{app_id}' does not exist")
    script_id = _script_in_app(conn, "script", body.text("script"), app_id)
    dl = body.data.get("dead_letter_script")
    dl_id = None if dl is None else _script_in_app(conn, "dead_letter_script", dl, app_id)
    base, cap = _backoff(body, 1000, 300_000)
    now = now_ms()
    t = Trigger(
        id=new_id("trg_"),
        app_id=app_id,
        kind=kind,
        script_id=script_id,
        dead_letter_script_id=dl_id,
        collection=check_collection(body.data.get("collection")) if kind == "kv" else None,
        ops=_ops(body.data.get("ops", list(OPS))) if kind == "kv" else None,
        schedule=check_schedule(body.data.get("schedule")) if kind == "cron" else None,
        timezone=check_timezone(body.data.get("timezone")) if kind == "cron" else None,
        max_attempts=body.integer("max_attempts", 3, lo=1, hi=_MAX_ATTEMPTS),
        backoff_base_ms=base,
        backoff_max_ms=cap,
        enabled=body.boolean("enabled", True),
        created_at=now,
        last_fired_at=now if kind == "cron" else None,
        skipped_runs=0,
    )
    insert_trigger(conn, t)
    return t


def patch_trigger(conn: sqlite3.Connection, trigger_id: str, data: dict[str, Any]) -> Trigger:
    """Apply a PATCH body (enable/disable, handler, retry policy, what it watches)."""
    t = get_trigger(conn, trigger_id)
    if t is None:
        raise NotFound(f"trigger '{trigger_id}' does not exist")
    body = Body(data, ("enabled", *_COMMON, *(_KV if t.kind == "kv" else _CRON)))
    changes: dict[str, Any] = {}
    if "script" in body:
        changes["script_id"] = _script_in_app(conn, "script", body.data["script"], t.app_id)
    if "dead_letter_script" in body:
        dl = body.data["dead_letter_script"]
        changes["dead_letter_script_id"] = (
            None if dl is None else _script_in_app(conn, "dead_letter_script", dl, t.app_id)
        )
    if "max_attempts" in body:
        changes["max_attempts"] = body.integer("max_attempts", lo=1, hi=_MAX_ATTEMPTS)
    base, cap = _backoff(body, t.backoff_base_ms, t.backoff_max_ms)
    changes.update(backoff_base_ms=base, backoff_max_ms=cap)
    if "collection" in body:
        changes["collection"] = check_collection(body.data["collection"])
    if "ops" in body:
        changes["ops"] = _ops(body.data["ops"])
    if "schedule" in body:
        changes["schedule"] = check_schedule(body.data["schedule"])
    if "timezone" in body:
        changes["timezone"] = check_timezone(body.data["timezone"])
    enabled = body.boolean("enabled", t.enabled)
    changes["enabled"] = enabled
    if t.kind == "cron" and (
        (enabled and not t.enabled) or {"schedule", "timezone"} & set(body.data)
    ):
        # Runs missed while disabled are not caught up; the new schedule counts from now.
        changes["last_fired_at"] = now_ms()
    update_trigger(conn, trigger_id, changes)
    updated = get_trigger(conn, trigger_id)
    assert updated is not None
    return updated
