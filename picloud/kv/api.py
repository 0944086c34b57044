"""The KV seam: what the broker and the admin routes call (`KvService`).

Today one implementation (`picloud.kv.service.SqliteKv`) runs in the daemon
on the SQLite store; a cluster would put a remote one behind the same seam.
Values cross it as JSON text so that nothing decodes them on the way.
"""

from __future__ import annotations

import builtins
import dataclasses
from typing import Protocol

from picloud.store.kv import CollectionInfo, Item

__all__ = ["AppNotFound", "CollectionInfo", "Item", "KvService", "Page"]


class AppNotFound(LookupError):
    """The app does not exist (or was deleted while a script ran)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Page:
    items: list[Item]
    cursor: str | None  # None when this is the last page


class KvService(Protocol):
    """Every method validates its arguments (TypeError/ValueError) whoever the caller."""

    async def get(self, app_id: str, collection: str, key: str) -> str | None:
        """The value's JSON text, or None when absent or expired."""
        ...

    async def has(self, app_id: str, collection: str, key: str) -> bool: ...

    def get_now(self, app_id: str, collection: str, key: str) -> str | None:
        """`get` without suspending: point reads are served inline by the broker."""
        ...

    def has_now(self, app_id: str, collection: str, key: str) -> bool: ...

    async def set(
        self,
        app_id: str,
        collection: str,
        key: str,
        value_json: str,
        *,
        ttl: float | None = None,
        depth: int = 0,
    ) -> str:
        """Store a value; returns "insert" or "update" (the trigger op)."""
        ...

    async def delete(self, app_id: str, collection: str, key: str, *, depth: int = 0) -> bool:
        """Remove a key; returns whether it was present."""
        ...

    async def incr(
        self, app_id: str, collection: str, key: str, by: int = 1, *, depth: int = 0
    ) -> int:
        """Atomically add `by` to an integer value (absent = 0); returns the new value."""
        ...

    async def list(
        self,
        app_id: str,
        collection: str,
        *,
        prefix: str = "",
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page: ...

    async def collections(
        self, app_id: str, *, after: str = "", limit: int = 100
    ) -> builtins.list[CollectionInfo]: ...

    async def usage(self, app_id: str) -> int:
        """Bytes (keys + values) the app holds, as counted against its quota."""
        ...

    async def app_exists(self, app_id: str) -> bool: ...

    async def purge_expired(self) -> int:
        """Delete expired rows now; returns how many."""
        ...
