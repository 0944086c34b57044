"""Typed application keys shared by every component, and the daemon's runtime state."""

from __future__ import annotations

import dataclasses
import time

from aiohttp import web

from picloud.config import Settings
from picloud.store import Database

__all__ = ["DB", "RUNTIME", "SETTINGS", "Runtime"]


@dataclasses.dataclass
class Runtime:
    """What /healthz and the watchdog look at."""

    started_at: float = dataclasses.field(default_factory=time.time)
    listening: bool = False
    store_ready: bool = False
    pool_ready: bool = False
    stopping: bool = False

    @property
    def ready(self) -> bool:
        return self.listening and self.store_ready and self.pool_ready and not self.stopping


SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", Database)
RUNTIME = web.AppKey("runtime", Runtime)
