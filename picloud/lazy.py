"""Package names imported from their home modules on first use (PEP 562 `__getattr__`).

For packages whose `__init__` must stay light: the zygote imports `picloud.executor`
and `picloud.kv`, and neither may pull the daemon's side (aiohttp, the store) into a
heap every worker inherits.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["exports"]


def exports(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`: each name of `homes` (name -> module) is
    imported on first use and kept in the package, so later lookups skip this."""
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        namespace[name] = value
        return value

    return __getattr__
