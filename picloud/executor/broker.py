"""The broker: answers the SDK calls of a running script, always as the channel's own app."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from picloud.executor.channel import WorkerChannel

__all__ = ["Broker"]

log = logging.getLogger("picloud.executor")
# Exception types whose name and message go back to the script as they are.
_FORWARDED = frozenset(
    {
        "ValueError",
        "TypeError",
        "KeyError",
        "LookupError",
        "PermissionError",
        "OverflowError",
        "RuntimeError",
        "TimeoutError",
    }
)


_INLINE = frozenset({"kv.get", "kv.has"})


def _err(call_id: Any, kind: str, message: str) -> dict[str, Any]:
    return {"t": "reply", "id": call_id, "err": {"type": kind, "message": message}}


class Broker:
    def __init__(self, app: web.Application) -> None:
        self.app = app
        self._tasks: set[asyncio.Task[None]] = set()
        # Imported on first use: the executor must not need the KV component to start.
        self._kv: Any = None
        self._reads: dict[str, Any] = {}  # op -> the KV component's inline point read

    def on_call(self, chan: WorkerChannel, frame: dict[str, Any]) -> None:
        call_id = frame.get("id")
        op: Any = frame.get("op")
        args = frame.get("args")
        read = self._reads.get(op) if type(op) is str else None
        if read is not None and type(args) is dict and "app" not in frame and "app" not in args:
            self._read_now(chan, call_id, op, read, args)
            return
        claimed = frame.get("app")
        if isinstance(args, dict) and "app" in args:
            claimed = args["app"]
        if claimed is not None and claimed != chan.app_id:
            log.warning(
                "executor: refused a frame of worker %d (app %r) naming app %r",
                chan.pid,
                chan.app_id,
                claimed,
            )
            chan.send(_err(call_id, "PermissionError", "a script acts for its own app only"))
            return
        if not isinstance(op, str) or not isinstance(args, dict):
            chan.fatal("a malformed SDK call")
            return
        if op in _INLINE:
            if not self._reads:
                self._reads = self._kv_module().point_reads(self.app)
            self._read_now(chan, call_id, op, self._reads[op], args)
            return
        chan.inflight += 1
        task = asyncio.create_task(self._serve(chan, call_id, op, args))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _read_now(
        self, chan: WorkerChannel, call_id: Any, op: str, read: Any, args: dict[str, Any]
    ) -> None:
        """A point read never waits: answered at once, without a task (the SDK's hot path)."""
        try:
            value = read(chan.app_id, args)
        except Exception as exc:  # noqa: BLE001 - forwarded to the script, or logged
            chan.send(self._error(chan, call_id, op, exc))
            return
        chan.send({"t": "reply", "id": call_id, "ok": value})

    async def _serve(
        self, chan: WorkerChannel, call_id: Any, op: str, args: dict[str, Any]
    ) -> None:
        try:
            reply = {"t": "reply", "id": call_id, "ok": await self._dispatch(chan, op, args)}
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - forwarded to the script, or logged
            reply = self._error(chan, call_id, op, exc)
        finally:
            chan.inflight -= 1
        chan.send(reply)

    def _error(self, chan: WorkerChannel, call_id: Any, op: str, exc: Exception) -> dict[str, Any]:
        kind = type(exc).__name__
        if kind not in _FORWARDED:
            log.exception("executor: SDK call %s of app %r failed", op, chan.app_id)
            kind, message = "RuntimeError", f"{op} failed"
        else:
            message = str(exc.args[0]) if len(exc.args) == 1 else str(exc)
        return _err(call_id, kind, message)

    def _kv_module(self) -> Any:
        if self._kv is None:
            from picloud.kv import broker

            self._kv = broker
        return self._kv

    async def _dispatch(self, chan: WorkerChannel, op: str, args: dict[str, Any]) -> Any:
        if op.startswith("kv."):
            return await self._kv_module().dispatch(self.app, chan.app_id, chan.depth + 1, op, args)
        raise ValueError(f"unknown SDK operation {op!r:.60}")

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
