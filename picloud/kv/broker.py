"""The daemon's side of the script SDK's `kv` calls: one frame in, one value out.

The executor's broker calls `dispatch` for every `kv.*` frame of a running
script. The app is the one the daemon bound to the script's channel and is
never read from the frame; an `app` argument is refused outright. Errors are
plain `TypeError`/`ValueError`, which the broker forwards to the script by
type name and message. Values cross as JSON text in both directions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from picloud.kv.api import AppNotFound, KvService
from picloud.kv.component import KV
from picloud.ops.kvstats import KV_STATS, KvStats, record_kv

__all__ = ["OPS", "dispatch", "point_reads"]

_Handler = Callable[[KvService, str, int, Any], Awaitable[Any]]


# `a` is Any: arguments come from a frame and are validated by the service itself.


async def _get(kv: KvService, app_id: str, depth: int, a: Any) -> Any:
    return await kv.get(app_id, a.get("collection"), a.get("key"))


async def _has(kv: KvService, app_id: str, depth: int, a: Any) -> Any:
    return await kv.has(app_id, a.get("collection"), a.get("key"))


async def _set(kv: KvService, app_id: str, depth: int, a: Any) -> Any:
    collection, key, value = a.get("collection"), a.get("key"), a.get("value")
    await kv.set(app_id, collection, key, value, ttl=a.get("ttl"), depth=depth)


async def _delete(kv: KvService, app_id: str, depth: int, a: Any) -> Any:
    return await kv.delete(app_id, a.get("collection"), a.get("key"), depth=depth)


async def _incr(kv: KvService, app_id: str, depth: int, a: Any) -> Any:
    collection, key, by = a.get("collection"), a.get("key"), a.get("by", 1)
    return await kv.incr(app_id, collection, key, by, depth=depth)


async def _list(kv: KvService, app_id: str, depth: int, a: Any) -> Any:
    page = await kv.list(
        app_id,
        a.get("collection"),
        prefix=a.get("prefix", ""),
        limit=a.get("limit", 100),
        cursor=a.get("cursor"),
    )
    # Items go as [key, value JSON] pairs; the SDK decodes each value in the script.
    return {"items": page.items, "cursor": page.cursor}


# op -> (handler, the argument names it accepts)
OPS: dict[str, tuple[_Handler, frozenset[str]]] = {
    "kv.get": (_get, frozenset({"collection", "key"})),
    "kv.has": (_has, frozenset({"collection", "key"})),
    "kv.set": (_set, frozenset({"collection", "key", "value", "ttl"})),
    "kv.delete": (_delete, frozenset({"collection", "key"})),
    "kv.incr": (_incr, frozenset({"collection", "key", "by"})),
    "kv.list": (_list, frozenset({"collection", "prefix", "limit", "cursor"})),
}


async def dispatch(
    app: web.Application, app_id: str, depth: int, op: str, args: dict[str, Any]
) -> Any:
    """Serve one SDK call for the app bound to the channel; TypeError/ValueError on misuse."""
    handler = _checked(op, args)
    try:
        return record_kv(app, op, args, await handler(app[KV], app_id, depth, args))
    except (ValueError, AppNotFound) as exc:
        raise _plain(exc) from None


def point_reads(app: web.Application) -> dict[str, Callable[[str, dict[str, Any]], Any]]:
    """`get` and `has`, served inline (no task, no suspension): op -> fn(app_id, args).

    The hottest path of the SDK, so it is the short one: the same checks and counters
    as `dispatch`, without its generic steps.
    """
    kv = app[KV]
    stats = app[KV_STATS] if KV_STATS in app else KvStats()

    def read(op: str, app_id: str, args: Any) -> str | None:
        if args.keys() != _POINT_ARGS:
            _checked(op, args)
        try:
            value = kv.get_now(app_id, args.get("collection"), args.get("key"))
        except ValueError as exc:
            raise _plain(exc) from None
        stats.ops[op[3:]] += 1
        return value

    def get(app_id: str, args: Any) -> Any:
        value = read("kv.get", app_id, args)
        if value is not None:
            stats.read_bytes += len(value)
        return value

    def has(app_id: str, args: Any) -> Any:
        return read("kv.has", app_id, args) is not None

    return {"kv.get": get, "kv.has": has}


_POINT_ARGS = frozenset({"collection", "key"})


def _checked(op: str, args: Any) -> _Handler:
    entry = OPS.get(op)
    if entry is None:
        raise ValueError(f"unknown KV operation {op!r:.40}")
    if not isinstance(args, dict):
        raise TypeError(f"{op} arguments must be a dict, not {type(args).__name__}")
    handler, allowed = entry
    for name in args:
        if name not in allowed:
            if name == "app":
                raise ValueError("the app is fixed by the daemon; scripts cannot name one")
            raise TypeError(f"{op}() got an unexpected argument {name!r:.40}")
    return handler


def _plain(exc: Exception) -> Exception:
    """QuotaExceeded, ValueTooLarge, UnicodeError, AppNotFound...: the script sees a plain
    ValueError."""
    if type(exc) is ValueError:
        return exc
    return ValueError(str(exc))
