"""What `picloud serve` sets up before aiohttp loads, so the daemon stays small in memory.

Three choices, each measured on an idle daemon (docs/performance.md, "Memory"):

- Python's own table of content types, not the host's `/etc/mime.types`: aiohttp
  builds a `MimeTypes()` at import, which reads the system files into ~1,500-entry
  dicts (~0.4 MiB) that a daemon serving no files from disk never consults. The
  dashboard names its own types; anything else falls back to Python's table,
  which is the same on every board.
- frozenlist's pure-Python build. Its C++ extension maps libstdc++ (~1 MiB
  resident) for the few lists aiohttp freezes at start-up, never on a hot path.
- aiohttp's package body deferred. `aiohttp/__init__.py` imports the whole HTTP
  client (connector, cookie jar, tracing, resolver, happy eyeballs, ~4.5 MiB
  resident); the daemon only serves. The package module is created without
  running its body, submodules (`aiohttp.web`, `aiohttp.hdrs`...) import as
  usual, and the first use of any other top-level name (`aiohttp.ClientSession`)
  runs the real body then, so nothing behaves differently, it only loads later.
"""

from __future__ import annotations

import importlib
import importlib.util
import mimetypes
import os
import re
import sys
import threading
import types
from typing import Any

__all__ = ["defer_aiohttp_body", "prepare"]

_VERSION = re.compile(r'^__version__\s*=\s*["\']([^"\']+)["\']', re.MULTILINE)


def prepare() -> None:
    """Call before anything imports aiohttp (the daemon's entry point does)."""
    if not mimetypes.inited:
        mimetypes.knownfiles = []  # documented knob: the files init() reads
    os.environ.setdefault("FROZENLIST_NO_EXTENSIONS", "1")
    defer_aiohttp_body()


def defer_aiohttp_body(name: str = "aiohttp") -> bool:
    """Put `name` in sys.modules without running its package body; False if it cannot be.

    Needs the package's `__version__` without running the body (its submodules
    import it): read from the source's `__version__ = "..."` line, or no deferral.
    """
    if name in sys.modules:
        return False
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.origin is None:
        return False
    if not spec.submodule_search_locations:
        return False
    try:
        with open(spec.origin, encoding="utf-8") as fh:
            found = _VERSION.search(fh.read(8192))
    except (OSError, UnicodeDecodeError):
        return False
    if found is None:
        return False
    module = importlib.util.module_from_spec(spec)
    module.__dict__["__version__"] = found.group(1)
    module.__dict__["__getattr__"] = _Deferred(module, spec)
    sys.modules[name] = module
    return True


class _Deferred:
    """The deferred package's `__getattr__`: submodules by import, anything else by the body."""

    def __init__(self, module: types.ModuleType, spec: importlib.machinery.ModuleSpec) -> None:
        self._module = module
        self._spec = spec
        self._lock = threading.RLock()
        self._state = "deferred"  # then "running", then "done"

    def __call__(self, attr: str) -> Any:
        module = self._module
        missing = AttributeError(f"module {module.__name__!r} has no attribute {attr!r}")
        if attr.startswith("__"):
            raise missing
        if _is_submodule(module.__name__, attr):
            # `from aiohttp import web` asks the package for `web` before importing it.
            return importlib.import_module(f"{module.__name__}.{attr}")
        with self._lock:
            if self._state != "deferred":  # done, or asked by the body itself as it runs
                raise missing
            self._state = "running"
            try:
                assert self._spec.loader is not None
                self._spec.loader.exec_module(module)
            except BaseException:
                self._state = "deferred"
                raise
            self._state = "done"
        if attr in module.__dict__:
            return module.__dict__[attr]
        body_getattr = module.__dict__.get("__getattr__")
        if body_getattr is not None and body_getattr is not self:
            return body_getattr(attr)
        raise missing


def _is_submodule(package: str, attr: str) -> bool:
    if not attr.isidentifier():
        return False
    try:
        return importlib.util.find_spec(f"{package}.{attr}") is not None
    except (ImportError, ValueError):
        return False
