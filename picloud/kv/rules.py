"""KV rules shared by the script SDK and the daemon: names, keys, values, TTLs, cursors.

Pure functions over the standard library only: this module is imported inside
sandboxed script processes (through `picloud.sdk.kv`) as well as by the daemon,
which runs every check again and has the last word. Wrong use raises the
ordinary Python exceptions a script author expects: `TypeError` for a wrong
type, `ValueError` for a wrong value.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from typing import Any

__all__ = [
    "COLLECTION_RE",
    "DEFAULT_LIST_LIMIT",
    "INT64_MAX",
    "INT64_MIN",
    "MAX_KEY_BYTES",
    "MAX_LIST_LIMIT",
    "MAX_TTL_S",
    "QuotaExceeded",
    "ValueTooLarge",
    "check_by",
    "check_collection",
    "check_key",
    "check_limit",
    "check_prefix",
    "check_ttl",
    "check_value_json",
    "decode_cursor",
    "encode_cursor",
    "encode_value",
    "prefix_end",
]

MAX_KEY_BYTES = 512
DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 1000
MAX_TTL_S = 10 * 365 * 24 * 3600  # ten years: far beyond any cache, still a safe int of ms
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
COLLECTION_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_MAX_CODE_POINT = 0x10FFFF


class ValueTooLarge(ValueError):
    """A value is larger than `kv_max_value_bytes` once encoded as JSON."""


class QuotaExceeded(ValueError):
    """The write would take the app past `kv_app_quota_bytes`."""


def check_collection(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"collection name must be a str, not {type(name).__name__}")
    if not COLLECTION_RE.fullmatch(name):
        raise ValueError(f"collection name must match [A-Za-z0-9_.-]{{1,64}}, got {name!r:.80}")
    return name


def check_key(key: object) -> int:
    """Validate a key; returns its length in UTF-8 bytes."""
    if not isinstance(key, str):
        raise TypeError(f"key must be a str, not {type(key).__name__}")
    if not key:
        raise ValueError("key must not be empty")
    size = _utf8_size(key, "key")
    if size > MAX_KEY_BYTES:
        raise ValueError(f"key is {size} UTF-8 bytes; the limit is {MAX_KEY_BYTES}")
    return size


def check_prefix(prefix: object) -> str:
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
    size = _utf8_size(prefix, "prefix")
    if size > MAX_KEY_BYTES:
        raise ValueError(f"prefix is {size} UTF-8 bytes; no key is longer than {MAX_KEY_BYTES}")
    return prefix


def _utf8_size(text: str, what: str) -> int:
    try:
        return len(text.encode())
    except UnicodeEncodeError:
        raise ValueError(f"{what} {text!r:.80} is not valid Unicode (lone surrogate)") from None


def check_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be an int, not {type(limit).__name__}")
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIST_LIMIT}, got {limit}")
    return limit


def check_ttl(ttl: object) -> float | None:
    """Seconds to live, or None for no expiry."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise TypeError(f"ttl must be a number of seconds or None, not {type(ttl).__name__}")
    if not math.isfinite(ttl) or not 0 < ttl <= MAX_TTL_S:
        raise ValueError(f"ttl must be more than 0 and at most {MAX_TTL_S} seconds, got {ttl}")
    return float(ttl)


def check_by(by: object) -> int:
    if isinstance(by, bool) or not isinstance(by, int):
        raise TypeError(f"incr by must be an int, not {type(by).__name__}")
    if not INT64_MIN <= by <= INT64_MAX:
        raise ValueError("incr by must fit in a signed 64-bit integer")
    return by


def encode_value(value: object) -> str:
    """The JSON text of a value; TypeError when JSON cannot hold it."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except TypeError as exc:
        raise TypeError(f"value cannot be stored as JSON: {exc}") from None
    except RecursionError:
        raise ValueError("value cannot be stored as JSON: nested too deeply") from None
    except ValueError as exc:  # NaN/Infinity, or a circular reference
        raise ValueError(f"value cannot be stored as JSON: {exc}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def check_value_json(text: object, max_bytes: int) -> int:
    """Validate a value's JSON text (as a forged frame could send anything); returns its bytes."""
    if not isinstance(text, str):
        raise TypeError(f"value JSON must be a str, not {type(text).__name__}")
    try:
        size = len(text.encode())
    except UnicodeEncodeError:
        raise ValueError("value cannot be stored: it contains a lone surrogate") from None
    if size > max_bytes:
        raise ValueTooLarge(f"value is {size} bytes encoded as JSON; the limit is {max_bytes}")
    try:
        json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise ValueError("value is not valid JSON") from None
    return size


def encode_cursor(collection: str, prefix: str, last_key: str) -> str:
    raw = json.dumps([collection, prefix, last_key], ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def decode_cursor(cursor: object, collection: str, prefix: str) -> str | None:
    """The last key of the previous page; ValueError when the cursor is not for this listing."""
    if cursor is None:
        return None
    if not isinstance(cursor, str):
        raise TypeError(f"cursor must be a str or None, not {type(cursor).__name__}")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError):
        raise ValueError("cursor is not valid") from None
    if not (isinstance(data, list) and len(data) == 3 and all(isinstance(v, str) for v in data)):
        raise ValueError("cursor is not valid")
    if data[0] != collection or data[1] != prefix:
        raise ValueError("cursor belongs to another listing: pass the same collection and prefix")
    last: str = data[2]
    return last


def prefix_end(prefix: str) -> str | None:
    """The smallest string above every string starting with `prefix` (None: no bound).

    Keys sort by UTF-8 bytes, which is code point order; so the bound is the
    prefix with its last code point raised by one (skipping surrogates, which
    no stored key holds), after dropping trailing U+10FFFF.
    """
    end = prefix.rstrip(chr(_MAX_CODE_POINT))
    if not end:
        return None
    nxt = ord(end[-1]) + 1
    if 0xD800 <= nxt <= 0xDFFF:
        nxt = 0xE000
    return end[:-1] + chr(nxt)
