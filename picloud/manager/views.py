"""The JSON shapes of the control plane's resources, as the admin API returns them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from picloud.store.apps import ApiKey, App
from picloud.store.scripts import Script, Version

__all__ = ["app_view", "iso", "key_view", "script_view", "version_view"]


def iso(ms: int | None) -> str | None:
    """Unix ms as ISO 8601 UTC with milliseconds, as trigger events carry it."""
    if ms is None:
        return None
    text = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def app_view(app: App) -> dict[str, Any]:
    return {
        "id": app.id,
        "created_at": iso(app.created_at),
        "scripts": app.scripts,
        "keys": app.keys,
        "secrets": app.secrets,
        "kv_bytes": app.kv_bytes,
    }


def key_view(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "app": key.app_id,
        "prefix": key.prefix,
        "created_at": iso(key.created_at),
        "last_used_at": iso(key.last_used_at),
    }


def script_view(script: Script) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": script.id,
        "app": script.app_id,
        "version": script.version,
        "public": script.public,
        "timeout_ms": script.timeout_ms,
        "memory_mb": script.memory_mb,
        "isolation": script.isolation,
        "sha256": script.sha256,
        "created_at": iso(script.created_at),
        "updated_at": iso(script.updated_at),
    }
    if script.source is not None:
        out["source"] = script.source
    return out


def version_view(version: Version) -> dict[str, Any]:
    out: dict[str, Any] = {
        "version": version.version,
        "sha256": version.sha256,
        "created_at": iso(version.created_at),
        "rollback_of": version.rollback_of,
    }
    if version.source is not None:
        out["source"] = version.source
    return out
