"""Validation of the ids and names the contract defines (slugs, collections)."""

from __future__ import annotations

import re
import secrets
import time

from picloud.errors import BadRequest

__all__ = ["COLLECTION_RE", "SLUG_RE", "check_collection", "check_slug", "new_id"]

SLUG_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
COLLECTION_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def check_slug(value: object, what: str) -> str:
    """An app or script id: `[a-z0-9][a-z0-9_-]{0,63}`."""
    if not isinstance(value, str) or not SLUG_RE.fullmatch(value):
        raise BadRequest(f"{what} must match [a-z0-9][a-z0-9_-]{{0,63}}, got {value!r:.80}")
    return value


def check_collection(value: object) -> str:
    if not isinstance(value, str) or not COLLECTION_RE.fullmatch(value):
        raise BadRequest(f"collection must match [A-Za-z0-9_.-]{{1,64}}, got {value!r:.80}")
    return value


def new_id(prefix: str = "") -> str:
    """A time-ordered id: sorting ids sorts by creation time (ms), then randomness."""
    return f"{prefix}{time.time_ns() // 1_000_000:012x}{secrets.token_hex(5)}"
