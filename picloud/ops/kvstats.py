"""Counters of scripts' KV calls (operations by name, value bytes in and out) for /metrics."""

from __future__ import annotations

import collections
import dataclasses
from typing import Any, TypeVar

from aiohttp import web

__all__ = ["KV_STATS", "KvStats", "record_kv"]

T = TypeVar("T")


@dataclasses.dataclass
class KvStats:
    """Totals since start: SDK calls served, and the JSON bytes of values written and read."""

    ops: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    written_bytes: int = 0
    read_bytes: int = 0

    def record(self, op: str, args: dict[str, Any], result: object) -> None:
        self.ops[op.removeprefix("kv.")] += 1
        if op == "kv.set" and isinstance(args.get("value"), str):
            self.written_bytes += len(args["value"])
        elif op == "kv.get" and isinstance(result, str):
            self.read_bytes += len(result)
        elif op == "kv.list" and isinstance(result, dict):
            for item in result.get("items") or ():
                if isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[1], str):
                    self.read_bytes += len(item[1])


KV_STATS = web.AppKey("kv_stats", KvStats)


def record_kv(app: web.Application, op: str, args: dict[str, Any], result: T) -> T:
    """Count one served KV call and hand its result through (one line in the KV broker)."""
    stats = app[KV_STATS] if KV_STATS in app else None
    if stats is not None:
        stats.record(op, args, result)
    return result
