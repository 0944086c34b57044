"""`picloud serve`: the event loop, the listening site, signals and ordered shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import os
import signal
import sys

from aiohttp import web

from picloud import sdnotify
from picloud.app import create_app
from picloud.config import Settings
from picloud.state import RUNTIME

__all__ = ["serve"]

log = logging.getLogger("picloud")


def serve(settings: Settings) -> int:
    faulthandler.enable()  # a watchdog SIGABRT then dumps every thread's stack
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency, but optional on odd boards
        log.warning("uvloop is not installed; using the default asyncio loop")
        asyncio.run(_serve(settings))
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_serve(settings))
    return 0


async def _serve(settings: Settings) -> None:
    app = create_app(settings)
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=settings.shutdown_timeout_s
    )
    await runner.setup()  # runs every cleanup_ctx: zygote, store, pool, ...
    try:
        site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True)
        await site.start()
        app[RUNTIME].listening = True
        log.info("listening on http://%s:%d/", settings.host, settings.port)
        # READY only now: the socket is up and every component has started.
        sdnotify.ready(f"serving on {settings.bind}")
        await _wait_for_signal()
    finally:
        app[RUNTIME].stopping = True
        sdnotify.stopping()
        log.info("shutting down")
        try:
            await asyncio.wait_for(runner.cleanup(), settings.shutdown_timeout_s + 5)
        except TimeoutError:
            log.error("shutdown took longer than %.0fs; exiting", settings.shutdown_timeout_s)


async def _wait_for_signal() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)


def configure_logging(level: str) -> None:
    """Plain lines to stderr (journald adds its own timestamps under systemd)."""
    handler = logging.StreamHandler(sys.stderr)
    under_systemd = "INVOCATION_ID" in os.environ
    fmt = (
        "%(levelname)s %(name)s: %(message)s"
        if under_systemd
        else ("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
