"""The KV component: per-app key-value collections for scripts and the admin API.

Imports lazily: `picloud.kv.rules` runs inside sandboxed script processes,
which must not import the daemon's side (aiohttp, the store) with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from picloud.kv.api import KvService
    from picloud.kv.broker import dispatch
    from picloud.kv.component import KV, kv_ctx

__all__ = ["KV", "KvService", "dispatch", "kv_ctx"]

_HOMES = {
    "KV": "picloud.kv.component",
    "kv_ctx": "picloud.kv.component",
    "dispatch": "picloud.kv.broker",
    "KvService": "picloud.kv.api",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'picloud.kv' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # resolved once: later lookups (one per SDK call) skip this
    return value
