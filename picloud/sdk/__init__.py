"""The script SDK (1.0): `from picloud.sdk import kv, log, Response` (also script globals)."""

from __future__ import annotations

from picloud.sdk import kv
from picloud.sdk.log import log
from picloud.sdk.response import Response

__all__ = ["Response", "kv", "log"]

SDK_VERSION = "1.0"
