"""The KV component: per-app key-value collections for scripts and the admin API.

Imports lazily: `picloud.kv.rules` runs inside sandboxed script processes,
which must not import the daemon's side (aiohttp, the store) with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from picloud.lazy import exports

if TYPE_CHECKING:
    from picloud.kv.api import KvService
    from picloud.kv.broker import dispatch
    from picloud.kv.component import KV, kv_ctx

__all__ = ["KV", "KvService", "dispatch", "kv_ctx"]

__getattr__ = exports(
    __name__,
    {
        "KV": "picloud.kv.component",
        "kv_ctx": "picloud.kv.component",
        "dispatch": "picloud.kv.broker",
        "KvService": "picloud.kv.api",
    },
)
