"""The script SDK's `kv`: collection handles over the daemon's per-app key-value store.

Runs inside the sandboxed script process, so it imports only the standard
library, msgspec (as the channel does) and the pure KV rules. Arguments are
checked here first (a mistake costs no round trip) and again by the daemon,
which has the last word. Values travel as JSON text and are decoded here.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from picloud.kv import rules
from picloud.sdk import _channel

__all__ = ["Collection", "collection"]

_fast_loads = msgspec.json.Decoder().decode


def _loads(text: str) -> Any:
    # msgspec decodes a small value ~10x faster than json.loads; it refuses the few texts
    # json.loads takes (1e400 as inf, an escaped lone surrogate), which go the slow way.
    try:
        return _fast_loads(text)
    except msgspec.DecodeError:
        return json.loads(text)


class Collection:
    """A handle on one collection of the script's app: `kv.collection("widgets")`."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = rules.check_collection(name)

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"kv.collection({self._name!r})"

    def get(self, key: str) -> Any:
        """The value stored at `key`, or None when absent."""
        _check_key(key)
        text = _channel.call("kv.get", {"collection": self._name, "key": key})
        return None if text is None else _loads(text)

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store `value` (anything JSON can hold); with `ttl`, it expires after `ttl` seconds."""
        rules.check_key(key)
        text = rules.encode_value(value)
        try:
            text.encode()
        except UnicodeEncodeError:
            raise ValueError("value cannot be stored: it contains a lone surrogate") from None
        args: dict[str, Any] = {"collection": self._name, "key": key, "value": text}
        if ttl is not None:
            args["ttl"] = rules.check_ttl(ttl)
        _channel.call("kv.set", args)

    def has(self, key: str) -> bool:
        """Is a value (even None) stored at `key`?"""
        rules.check_key(key)
        return bool(_channel.call("kv.has", {"collection": self._name, "key": key}))

    def delete(self, key: str) -> bool:
        """Remove `key`; returns whether it was present."""
        rules.check_key(key)
        return bool(_channel.call("kv.delete", {"collection": self._name, "key": key}))

    def list(self, prefix: str = "", limit: int = 100, cursor: str | None = None) -> dict[str, Any]:
        """One page of items in key order: {"items": [{"key", "value"}], "cursor": str | None}."""
        rules.check_prefix(prefix)
        rules.check_limit(limit)
        rules.decode_cursor(cursor, self._name, prefix)
        args = {"collection": self._name, "prefix": prefix, "limit": limit, "cursor": cursor}
        reply = _channel.call("kv.list", args)
        items = [{"key": key, "value": _loads(text)} for key, text in reply["items"]]
        return {"items": items, "cursor": reply["cursor"]}

    def incr(self, key: str, by: int = 1) -> int:
        """Atomically add `by` to the integer at `key` (absent counts as 0); the new value."""
        rules.check_key(key)
        rules.check_by(by)
        result: int = _channel.call("kv.incr", {"collection": self._name, "key": key, "by": by})
        return result


def _check_key(key: object) -> None:
    # An ASCII str of 1..512 characters is a valid key: skip the full check's encode().
    if type(key) is not str or not 0 < len(key) <= rules.MAX_KEY_BYTES or not key.isascii():
        rules.check_key(key)


def collection(name: str) -> Collection:
    """A handle on the collection `name` (`[A-Za-z0-9_.-]{1,64}`) of the script's app."""
    return Collection(name)
