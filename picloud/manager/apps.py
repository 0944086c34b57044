"""Apps, their API keys and secrets: the operations behind the admin routes."""

from __future__ import annotations

import re
import sqlite3

from picloud.auth import hash_key, new_secret
from picloud.errors import BadRequest, Conflict, NotFound
from picloud.ids import new_id
from picloud.store import Database
from picloud.store import apps as store
from picloud.store.apps import ApiKey, App

__all__ = [
    "KEY_PREFIX",
    "SECRET_NAME_RE",
    "check_secret_name",
    "create_app",
    "create_key",
    "delete_app",
    "delete_secret",
    "get_app",
    "require_app",
    "revoke_key",
    "set_secret",
]

KEY_PREFIX = "pc_key_"
# Shown when keys are listed: enough to tell keys apart, far too little to guess one.
_SHOWN = len(KEY_PREFIX) + 6
SECRET_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def check_secret_name(name: str) -> str:
    if not SECRET_NAME_RE.fullmatch(name):
        raise BadRequest(f"secret name must match [A-Za-z_][A-Za-z0-9_]{{0,127}}, got {name!r:.80}")
    return name


def require_app(conn: sqlite3.Connection, app_id: str) -> None:
    if not store.app_exists(conn, app_id):
        raise NotFound(f"app '{app_id}' does not exist")


async def create_app(db: Database, app_id: str) -> App:
    app = await db.write(lambda c: store.create_app(c, app_id))
    if app is None:
        raise Conflict(f"app '{app_id}' already exists")
    return app


async def get_app(db: Database, app_id: str) -> App:
    app = await db.read(lambda c: store.get_app(c, app_id))
    if app is None:
        raise NotFound(f"app '{app_id}' does not exist")
    return app


async def delete_app(db: Database, app_id: str) -> None:
    if not await db.write(lambda c: store.delete_app(c, app_id), bulk=True):
        raise NotFound(f"app '{app_id}' does not exist")


async def create_key(db: Database, app_id: str) -> tuple[ApiKey, str]:
    """A new key and its plaintext, which is never stored and so shown only now."""
    key = new_secret(KEY_PREFIX)

    def write(conn: sqlite3.Connection) -> ApiKey:
        require_app(conn, app_id)
        return store.create_key(conn, new_id("key_"), app_id, hash_key(key), key[:_SHOWN])

    return await db.write(write), key


async def revoke_key(db: Database, app_id: str, key_id: str) -> None:
    def write(conn: sqlite3.Connection) -> bool:
        require_app(conn, app_id)
        return store.revoke_key(conn, app_id, key_id)

    if not await db.write(write):
        raise NotFound(f"app '{app_id}' has no key '{key_id}'")


async def set_secret(db: Database, app_id: str, name: str, value: str) -> bool:
    """Sets the secret; True when it is new."""

    def write(conn: sqlite3.Connection) -> bool:
        require_app(conn, app_id)
        return store.set_secret(conn, app_id, name, value)

    return await db.write(write)


async def delete_secret(db: Database, app_id: str, name: str) -> None:
    def write(conn: sqlite3.Connection) -> bool:
        require_app(conn, app_id)
        return store.delete_secret(conn, app_id, name)

    if not await db.write(write):
        raise NotFound(f"app '{app_id}' has no secret '{name}'")
