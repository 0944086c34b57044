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


def _err(call_id: Any, kind: str, message: str) -> dict[str, Any]:
    return {"t": "reply", "id": call_id, "err": {"type": kind, "message": message}}


class Broker:
    def __init__(self, app: web.Application) -> None:
        self.app = app
        self._tasks: set[asyncio.Task[None]] = set()

    def on_call(self, chan: WorkerChannel, frame: dict[str, Any]) -> None:
        call_id = frame.get("id")
        claimed = frame.get("app")
        args = frame.get("args")
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
        op = frame.get("op")
        if not isinstance(op, str) or not isinstance(args, dict):
            chan.fatal("a malformed SDK call")
            return
        chan.inflight += 1
        task = asyncio.create_task(self._serve(chan, call_id, op, args))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(
        self, chan: WorkerChannel, call_id: Any, op: str, args: dict[str, Any]
    ) -> None:
        try:
            reply = {"t": "reply", "id": call_id, "ok": await self._dispatch(chan, op, args)}
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the script sees it as an ordinary exception
            kind = type(exc).__name__
            if kind not in _FORWARDED:
                log.exception("executor: SDK call %s of app %r failed", op, chan.app_id)
                kind, message = "RuntimeError", f"{op} failed"
            else:
                message = str(exc.args[0]) if len(exc.args) == 1 else str(exc)
            reply = _err(call_id, kind, message)
        finally:
            chan.inflight -= 1
        chan.send(reply)

    async def _dispatch(self, chan: WorkerChannel, op: str, args: dict[str, Any]) -> Any:
        if op.startswith("kv."):
            from picloud import kv

            dispatch = getattr(kv, "dispatch", None)
            if dispatch is None:
                raise RuntimeError("kv is not available")
            return await dispatch(self.app, chan.app_id, chan.depth + 1, op, args)
        raise ValueError(f"unknown SDK operation {op!r:.60}")

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
