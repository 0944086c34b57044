"""Routes: the data plane, `ANY /api/v1/execute/{id}[/{tail}]`."""

from __future__ import annotations

import asyncio

from aiohttp import web

from picloud.api.common import API, doc, read_body
from picloud.auth import bearer, hash_key
from picloud.errors import NotFound, Unauthorized, Unavailable
from picloud.executor.api import Job, Outcome
from picloud.executor.service import EXECUTOR
from picloud.orchestrator.http import build_ctx, outcome_response
from picloud.state import SETTINGS

__all__ = ["routes"]

routes = web.RouteTableDef()
_WATCH_S = 0.25  # how often a long run checks whether its client is still there


@routes.route("*", f"{API}/execute/{{id}}")
@doc("Run a script (public, or with an app key); the script's reply.", auth="app key")
async def execute(request: web.Request) -> web.StreamResponse:
    return await _execute(request, "")


@routes.route("*", f"{API}/execute/{{id}}/{{tail:.*}}")
@doc("Run a script with a path tail (`ctx.request.tail`).", auth="app key")
async def execute_tail(request: web.Request) -> web.StreamResponse:
    return await _execute(request, "/" + request.match_info["tail"])


async def _execute(request: web.Request, tail: str) -> web.StreamResponse:
    app = request.app
    lookup = app[EXECUTOR].lookup
    if lookup is None:
        raise Unavailable("the daemon is starting", headers={"Retry-After": "1"})
    lookup.refresh()
    script_id = request.match_info["id"]
    script = lookup.script(script_id)
    if script is None:
        raise NotFound(f"script {script_id!r:.80} does not exist")
    if not script.public:
        key = bearer(request, alt_header="X-PiCloud-Key")
        if key is None or not lookup.key_matches(script.app_id, hash_key(key)):
            raise Unauthorized("this script needs an API key of its app")
    # Most calls (GET) have no body: skip the stream read altogether.
    body = (
        await read_body(request, app[SETTINGS].max_execute_body_bytes)
        if request.body_exists
        else b""
    )
    secrets = lookup.secrets(script.app_id)
    ctx = build_ctx(
        app_id=script.app_id,
        script_id=script.script_id,
        method=request.method,
        path=request.path,
        tail=tail,
        query=request.query.items(),
        headers=request.headers.items(),
        body=body,
        secrets=secrets,
    )
    outcome = await _run_watched(request, Job(lookup.ref(script), ctx))
    return outcome_response(outcome)


async def _run_watched(request: web.Request, job: Job) -> Outcome:
    """Run the job; if the client disconnects meanwhile, cancel it (the worker is killed).

    A timer (not a second task) so the common, fast run pays one TimerHandle only.
    """
    watch = _Watch(request, asyncio.current_task())
    try:
        return await request.app[EXECUTOR].run(job)
    finally:
        watch.stop()


class _Watch:
    def __init__(self, request: web.Request, task: asyncio.Task[object] | None) -> None:
        self.request = request
        self.task = task
        self.handle = asyncio.get_running_loop().call_later(_WATCH_S, self._check)

    def _check(self) -> None:
        transport = self.request.transport
        if transport is None or transport.is_closing():
            if self.task is not None:
                self.task.cancel()
            return
        self.handle = asyncio.get_running_loop().call_later(_WATCH_S, self._check)

    def stop(self) -> None:
        self.handle.cancel()
