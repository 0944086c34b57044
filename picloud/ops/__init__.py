"""Operations: board health, metrics, backups, restore and retention.

Kept import-light: every `picloud` CLI command imports `picloud.ops.cli`, which
must not pull in aiohttp, psutil or prometheus_client; the daemon-side names
(`OPS`, `Ops`, `ops_ctx` in `picloud.ops.component`) load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from picloud.ops.component import OPS, Ops, ops_ctx

__all__ = ["OPS", "Ops", "ops_ctx"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from picloud.ops import component

        return getattr(component, name)
    raise AttributeError(f"module 'picloud.ops' has no attribute {name!r}")
