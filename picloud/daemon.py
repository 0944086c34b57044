"""`picloud serve`: the event loop, the listening site, signals, systemd's watchdog, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import ipaddress
import logging
import signal
import socket
import sys

from aiohttp import web

from picloud import sdnotify  # first: takes NOTIFY_SOCKET & co. out of the environment
from picloud.app import create_app
from picloud.config import Settings
from picloud.executor import EXECUTOR
from picloud.ops.health import executor_figures
from picloud.state import DB, RUNTIME

__all__ = ["serve"]

log = logging.getLogger("picloud")

STATUS_EVERY_S = 5.0
_BACKLOG = 128  # aiohttp's default for TCPSite


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
    tasks: list[asyncio.Task[None]] = []
    try:
        where = await _start_site(runner, settings)
        app[RUNTIME].listening = True
        # READY only now: the socket is up and every component has started.
        sdnotify.ready(f"serving on {where}")
        interval = sdnotify.watchdog_interval()
        every = min(STATUS_EVERY_S, interval or STATUS_EVERY_S)
        tasks = [asyncio.create_task(_report_status(app, runner, where, every))]
        if interval:
            tasks.append(asyncio.create_task(_watchdog(app, interval)))
        await _wait_for_signal()
    finally:
        app[RUNTIME].stopping = True
        sdnotify.stopping()
        for task in tasks:
            task.cancel()
        log.info("shutting down")
        try:
            await asyncio.wait_for(runner.cleanup(), settings.shutdown_timeout_s + 5)
        except TimeoutError:
            log.error("shutdown took longer than %.0fs; exiting", settings.shutdown_timeout_s)


async def _start_site(runner: web.AppRunner, settings: Settings) -> str:
    """Listen on the socket systemd passed in (picloud.socket), else on `bind`."""
    sock = sdnotify.listen_socket()
    site: web.BaseSite
    if sock is not None:
        site = web.SockSite(runner, sock)
        where = "{}:{}".format(*sock.getsockname()[:2])
        log.info("listening on %s (socket from systemd; `bind` is not used)", where)
    else:
        listening = _listen_on_address(settings.host, settings.port)
        if listening is not None:
            site = web.SockSite(runner, listening)
        else:  # a host name: resolved by the loop, once
            site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True)
        where = settings.bind
        log.info("listening on http://%s:%d/", settings.host, settings.port)
    await site.start()
    return where


def _listen_on_address(host: str, port: int) -> socket.socket | None:
    """A listening socket for a literal IP address, or None for a host name.

    Given a host, uvloop resolves it on libuv's thread pool, which starts four
    threads that then idle for the daemon's whole life (~0.4 MiB resident); an
    address needs no resolving, so the socket is made here as asyncio would.
    """
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return None
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(_BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


async def _watchdog(app: web.Application, interval: float) -> None:
    """WATCHDOG=1 every `interval` s, but only while the store and the sandbox answer.

    A wedged writer thread, a dead zygote or a sandbox that lost a layer since start
    stops the pings, so systemd restarts the whole service (and with it a root zygote).
    """
    baseline = _sandbox_layers(app)
    failing: str | None = None
    while True:
        problem = await _health_problem(app, interval, baseline)
        if problem is None:
            sdnotify.watchdog()
        if problem != failing:  # log changes only, not every interval
            if problem is None:
                log.info("watchdog: healthy again")
            else:
                log.error("watchdog: %s; not pinging", problem)
        failing = problem
        await asyncio.sleep(interval)


async def _health_problem(
    app: web.Application, budget: float, baseline: frozenset[str]
) -> str | None:
    """None when healthy, else what is wrong (one line)."""
    try:
        async with asyncio.timeout(max(budget, 0.5)):
            if not await app[DB].ping():
                return "the store writer does not answer"
            if not app[RUNTIME].pool_ready:
                return "the sandbox pool is not ready (zygote restarting?)"
            lost = baseline - _sandbox_layers(app)
            if lost:
                # e.g. a zygote restarted after the drop from root runs without uid/namespaces
                return f"the sandbox lost layers since start: {', '.join(sorted(lost))}"
            check = getattr(app.get(EXECUTOR), "healthy", None)
            if check is not None:
                result = check()
                if not (await result if asyncio.iscoroutine(result) else result):
                    return "the executor reports unhealthy"
    except TimeoutError:
        return f"health checks took longer than {budget:.1f}s"
    return None


def _sandbox_layers(app: web.Application) -> frozenset[str]:
    """Names of the sandbox layers that are on (what /api/v1/admin/system shows)."""
    layers = executor_figures(app.get(EXECUTOR))["sandbox"]
    if not isinstance(layers, dict):
        return frozenset()
    return frozenset(name for name, on in layers.items() if on is True)


async def _report_status(
    app: web.Application, runner: web.AppRunner, where: str, every: float
) -> None:
    """STATUS= for `systemctl status`: live counts every few seconds."""
    while True:
        await asyncio.sleep(every)
        figures = executor_figures(app.get(EXECUTOR))["invocations"]
        server = runner.server
        in_flight = server.requests_count if server is not None else 0
        sdnotify.status(
            f"serving on {where}; {in_flight} requests in flight, "
            f"{figures['running'] or 0} scripts running, {figures['queued'] or 0} queued"
        )


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
    """The journal under systemd (structured, with priorities), else plain lines to stderr."""
    journal = sdnotify.journal_handler()
    handler = journal or logging.StreamHandler(sys.stderr)
    if journal is not None:
        fmt = "%(name)s: %(message)s"  # the level travels as the entry's PRIORITY
    elif sdnotify.under_systemd():
        fmt = "%(levelname)s %(name)s: %(message)s"  # journald adds the timestamp
    else:
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
