"""The in-process `Executor`: admission, a worker of the job's app, the run, its record."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import random
import signal
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from picloud.affinity import ANY_CPU, Colocation, run_on
from picloud.config import Settings
from picloud.errors import Unavailable
from picloud.executor.api import Job, Outcome, ScriptResponse, Status
from picloud.executor.broker import Broker
from picloud.executor.channel import CLOSED, WorkerGone
from picloud.executor.pool import Pool, Worker
from picloud.executor.records import Recorder
from picloud.executor.zygote_client import ExitInfo, SpawnError, ZygoteClient
from picloud.orchestrator.admission import Admission
from picloud.orchestrator.lookup import Lookup
from picloud.state import DB, RUNTIME, SETTINGS

__all__ = ["EXECUTOR", "SandboxExecutor", "executor_ctx", "zygote_ctx"]

log = logging.getLogger("picloud.executor")
_EXIT_WAIT_S = 0.5  # how long a dead worker's exit notice may take to classify its death
_RESTART_DELAYS_S = (0.2, 0.5, 1, 2, 5, 10)
_LIMIT_SIGNALS = {signal.SIGXCPU, signal.SIGXFSZ}
_SETTLE_S = 1.0  # after start-up, when the heap is settled (see _settle)


class SandboxExecutor:
    """Runs jobs in sandboxed workers forked by the zygote; the one `Executor` today."""

    def __init__(self, app: web.Application, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.zygote = ZygoteClient(settings.sandbox, str(settings.state_dir.resolve()))
        self.broker = Broker(app)
        self.pool = Pool(settings, self.zygote, self.broker.on_call)
        self.admission = Admission(
            self.pool.max_total,
            self.pool.max_per_app,
            settings.max_queue,
            settings.queue_timeout_ms / 1000,
        )
        self.colocation = Colocation(settings.cpu_colocate)
        self.recorder: Recorder | None = None
        self.lookup: Lookup | None = None  # set by executor_ctx, once the store is open
        self._tasks: set[asyncio.Task[None]] = set()
        self.zygote.on_death = self._zygote_died
        self.zygote_restarts = 0

    @property
    def layers(self) -> dict[str, Any]:
        """The sandbox layers in force (for GET /api/v1/admin/system under "sandbox")."""
        return dict(self.zygote.layers)

    def forget_app(self, app_id: str) -> None:
        """An app was deleted: none of its warm workers (and their memory) may serve again."""
        self.pool.forget_app(app_id)

    def sandbox_report(self) -> dict[str, Any]:
        return self.layers

    def stats(self) -> dict[str, int]:
        return {
            "workers": self.pool.size,
            "idle_workers": self.pool.idle_count(),
            "running": self.admission.running,
            "queued": self.admission.queued,
            "refused": self.admission.refused,
            "zygote_restarts": self.zygote_restarts,
        }

    # ---- lifecycle

    async def start_zygote(self) -> None:
        await self.zygote.start()
        layers = self.zygote.layers
        on = sorted(k for k, v in layers.items() if v is True)
        off = sorted(k for k, v in layers.items() if v is False)
        log.info("sandbox (%s): on: %s; off: %s", layers.get("mode"), " ".join(on), " ".join(off))
        missing = _missing(layers)
        if missing and self.settings.sandbox == "required":
            await self.zygote.stop()
            raise RuntimeError(f"sandbox=required but these layers are missing: {missing}")
        if missing and self.settings.sandbox == "auto":
            log.warning("sandbox: degraded, missing %s", ", ".join(missing))
        if layers.get("mounts_skipped"):
            log.warning(
                "sandbox: not masking %s: the Python installation lives there",
                layers["mounts_skipped"],
            )

    def _zygote_died(self) -> None:
        self.pool.zygote_died()
        if self.app[RUNTIME].stopping or self.recorder is None:
            return
        self.app[RUNTIME].pool_ready = False
        log.error("executor: the zygote died; restarting it")
        task = asyncio.get_running_loop().create_task(self._restart())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _restart(self) -> None:
        for delay in (*_RESTART_DELAYS_S, *[_RESTART_DELAYS_S[-1]] * 1000):
            await asyncio.sleep(delay)
            if self.app[RUNTIME].stopping:
                return
            try:
                await self.zygote.stop()
                await self.zygote.start()
            except (OSError, SpawnError, TimeoutError) as exc:
                log.error("executor: zygote restart failed: %s", exc)
                continue
            missing = _missing(self.zygote.layers)
            if missing and self.settings.sandbox == "required":
                # e.g. restarted after the daemon dropped root: fail closed, never run degraded
                log.error("executor: restarted zygote lacks %s; sandbox=required", missing)
                await self.zygote.stop()
                continue
            if missing:
                log.warning("sandbox: degraded after the restart, missing %s", ", ".join(missing))
            self.zygote_restarts += 1
            self.app[RUNTIME].pool_ready = True
            log.info("executor: zygote restarted")
            return

    async def _idle_reaper(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, self.settings.worker_idle_s))
            self.pool.reap_idle()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.broker.close()
        await self.pool.close()
        await self.zygote.stop()

    # ---- running

    async def run(self, job: Job) -> Outcome:
        script = job.script
        invocation_id = _invocation_id()
        ctx = job.ctx
        ctx["invocation_id"] = invocation_id
        ctx["app_id"] = script.app_id
        ctx["script_id"] = script.script_id
        if not self.zygote.alive:
            raise Unavailable(
                "the sandbox pool is restarting; retry shortly", headers={"Retry-After": "1"}
            )
        if not self.admission.try_acquire(script.app_id):
            await self.admission.acquire(script.app_id)
        started_at = time.time()
        t0 = time.perf_counter()
        cold: float | None = None
        try:
            fresh = script.isolation == "fresh"
            # The warm path takes an idle worker without a coroutine; otherwise wait or fork.
            worker = self.pool.take_idle(script.app_id, fresh)
            try:
                if worker is None:
                    worker, cold = await self.pool.checkout(script.app_id, fresh)
            except SpawnError as exc:
                outcome = Outcome(invocation_id, "internal", None, f"no worker: {exc}", "", 0.0)
            else:
                outcome = await self._on_worker(worker, job, invocation_id)
        except asyncio.CancelledError:  # the caller went away; its worker was killed
            gone = Outcome(
                invocation_id, "internal", None, "cancelled: the caller went away", "", 0
            )
            gone.duration_ms = (time.perf_counter() - t0) * 1000
            self._record(job, gone, started_at, cold)
            raise
        finally:
            self.admission.release(script.app_id)
        outcome.duration_ms = (time.perf_counter() - t0) * 1000
        self._record(job, outcome, started_at, cold)
        return outcome

    def _job_frame(self, worker: Worker, job: Job) -> tuple[dict[str, Any], tuple[str, int, int]]:
        """The job frame for this worker (with the source if it has not run this version)."""
        script = job.script
        # The source's hash too: a script deleted and re-created starts again at version 1.
        # (str caches its hash, and the lookup cache keeps the same str: nearly free.)
        key = (script.script_id, script.version, hash(script.source))
        frame: dict[str, Any] = {
            "t": "job",
            "script": script.script_id,
            "version": script.version,
            "h": key[2],
            "ctx": job.ctx,
            "memory_mb": script.memory_mb,
            "timeout_ms": script.timeout_ms,
            "log_cap": self.settings.log_cap_bytes,
        }
        if self.colocation.enabled:
            frame["cpu"] = self.colocation.cpu_for(self.admission.running)
        if key not in worker.seen:
            frame["source"] = script.source
        return frame, key

    async def _on_worker(self, worker: Worker, job: Job, invocation_id: str) -> Outcome:
        script = job.script
        frame, key = self._job_frame(worker, job)
        fresh = script.isolation == "fresh"
        future = worker.channel.start(frame, job.depth)
        # A plain timer on the result future: cheaper than asyncio.timeout() per run.
        timer = asyncio.get_running_loop().call_later(script.timeout_ms / 1000, _expire, future)
        try:
            result = await future
        except TimeoutError:
            self.pool.kill(worker)
            self.pool.checkin(worker, reusable=False)
            message = f"the script ran past its time limit of {script.timeout_ms} ms"
            return Outcome(invocation_id, "timeout", None, message, "", 0.0)
        except WorkerGone as exc:
            self.pool.checkin(worker, reusable=False)
            return await self._died(worker, invocation_id, str(exc), script.memory_mb)
        except asyncio.CancelledError:
            self.pool.kill(worker)  # the caller went away: nothing may keep running for it
            self.pool.checkin(worker, reusable=False)
            raise
        finally:
            timer.cancel()
        if result.get("loaded"):
            worker.seen.add(key)
        if "learned" in result:
            self.zygote.learn(result["learned"])
        reusable = (
            not fresh and not result.get("recycle") and result.get("status") != "resource_limit"
        )
        self.pool.checkin(worker, reusable=reusable)
        if fresh:
            self.pool.prefork(script.app_id)
        return _outcome(invocation_id, result)

    async def _died(self, worker: Worker, invocation_id: str, why: str, memory_mb: int) -> Outcome:
        """The worker's channel closed mid-run: say why, from its exit status if it comes.

        We did not kill it (timeouts and disconnects are handled before this), so a
        worker that exited or took a signal did so by the script's own act (`os._exit`,
        `os.kill(os.getpid(), ...)`, `signal.alarm`, a ctypes crash): a script_error, or
        resource_limit for a limit signal or a SIGKILL at its memory limit (the OOM
        killer). Only a death we cannot explain (no exit notice) is internal.
        """
        info: ExitInfo | None = None
        with contextlib.suppress(TimeoutError, SpawnError):
            async with asyncio.timeout(_EXIT_WAIT_S):
                info = await asyncio.shield(worker.exited)
        if info is None or info.lost:
            message = f"the worker died during the invocation ({why})"
            return Outcome(invocation_id, "internal", None, message, "", 0.0)
        oom = info.signal == signal.SIGKILL and info.maxrss_kb >= memory_mb * 1024 * 9 // 10
        if info.signal in _LIMIT_SIGNALS or oom:
            status: Status = "resource_limit"
            message = f"the script exceeded a resource limit ({info.describe()})"
        elif why != CLOSED:  # the daemon cut the channel: the script broke the protocol
            status = "script_error"
            message = f"the script broke its worker's channel protocol ({why})"
        else:
            status = "script_error"
            message = f"the script ended its own worker ({info.describe()})"
        return Outcome(invocation_id, status, None, message, "", 0.0, info.cpu_ms, info.maxrss_kb)

    def _record(self, job: Job, outcome: Outcome, started_at: float, cold: float | None) -> None:
        if self.recorder is None:
            return
        http = outcome.response.status if outcome.response is not None else None
        if http is None:
            http = {"timeout": 504}.get(outcome.status, 500)
        s = job.script
        # A plain tuple in the column order of store.invocations.ROW: built once per run.
        self.recorder.add(
            (
                outcome.invocation_id,
                s.app_id,
                s.script_id,
                s.version,
                job.trigger,
                job.trigger_id,
                job.event_id,
                outcome.status,
                http,
                int(started_at * 1000),
                outcome.duration_ms,
                outcome.cpu_ms,
                outcome.peak_memory_kb,
                cold,
                outcome.log,
                outcome.error,
            )  # fmt: skip
        )


def _invocation_id() -> str:
    """The format of `picloud.ids.new_id("inv_")` (ms time, then 40 random bits), minus its
    getrandom() syscall: these ids need to be unique and time-ordered, not unguessable."""
    return f"inv_{time.time_ns() // 1_000_000:012x}{random.getrandbits(40):010x}"


def _settle() -> None:
    """Once started: freeze the start-up heap out of the collector's way.

    Every object alive now (modules, routes, caches) lives as long as the daemon;
    frozen, the oldest generation's collections stop walking them on the request
    path. (A malloc_trim here returned nothing: start-up leaves no free pages.)
    """
    gc.collect()
    gc.freeze()


def _expire(future: asyncio.Future[dict[str, Any]]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


def _outcome(invocation_id: str, result: dict[str, Any]) -> Outcome:
    status: Status = result.get("status", "internal")
    if status not in ("ok", "script_error", "timeout", "resource_limit", "internal"):
        status = "internal"
    response = None
    http = result.get("http")
    if status == "ok" and isinstance(http, list) and len(http) == 3:
        headers, body = http[1], http[2]
        # Decoded frames hold fresh dicts and bytes already: copy only what is not one.
        response = ScriptResponse(
            int(http[0]),
            headers if type(headers) is dict else dict(headers),
            body if type(body) is bytes else bytes(body),
        )
    elif status == "ok":
        status = "internal"
    return Outcome(
        invocation_id, status, response, result.get("error"), str(result.get("log", "")),
        0.0, result.get("cpu_ms"), result.get("maxrss_kb"),
    )  # fmt: skip


def _missing(layers: dict[str, Any]) -> list[str]:
    if layers.get("mode") == "off":
        return []
    gone = [name for name in ("uid", "no_new_privs", "seccomp") if not layers.get(name)]
    if not (layers.get("landlock") or layers.get("mounts")):
        gone.append("landlock or mount namespace")
    return gone


EXECUTOR = web.AppKey("executor", SandboxExecutor)


async def zygote_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start the zygote first: before the store opens or any secret is read."""
    executor = SandboxExecutor(app, app[SETTINGS])
    await executor.start_zygote()
    app[EXECUTOR] = executor
    try:
        yield
    finally:
        await executor.close()


async def executor_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start the invocation recorder and the idle reaper; the pool is then ready."""
    executor = app[EXECUTOR]
    recorder = Recorder(app[DB])
    recorder.start()
    executor.recorder = recorder
    executor.lookup = Lookup(app[DB])
    reaper = asyncio.create_task(executor._idle_reaper(), name="worker-idle-reaper")
    app[RUNTIME].pool_ready = executor.zygote.alive
    loop = asyncio.get_running_loop()
    settle = loop.call_later(_SETTLE_S, _settle)
    if executor.colocation.enabled:
        # Threads inherit the loop thread's CPU: the default pool's (to_thread) run anywhere.
        loop.set_default_executor(ThreadPoolExecutor(initializer=run_on, initargs=(ANY_CPU,)))
        executor.colocation.start()
        log.info(
            "executor: event loop on CPU %d, shared with a worker running alone",
            executor.colocation.home,
        )
    yield
    executor.colocation.stop()
    settle.cancel()
    gc.unfreeze()  # an app torn down in a longer-lived process (tests) can then be collected
    app[RUNTIME].pool_ready = False
    reaper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reaper
    await recorder.close()
    executor.recorder = None
