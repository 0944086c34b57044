"""One handler run for a trigger: build ctx, hand the job to the executor, judge the outcome."""

from __future__ import annotations

from typing import Any, Literal

from picloud.executor.api import Executor, Job, ScriptRef
from picloud.store import Database
from picloud.store.apps import app_secrets
from picloud.store.scripts import load_runnable
from picloud.versions import SDK_VERSION

__all__ = ["run_handler"]


async def run_handler(
    db: Database,
    executor: Executor,
    *,
    script_id: str,
    event: dict[str, Any],
    trigger: Literal["kv", "cron", "dead_letter"],
    trigger_id: str | None,
    event_id: int | None,
    depth: int,
) -> str | None:
    """Run `script_id` with ctx["event"] = `event`; None when it ended ok, else the error.

    Raises `picloud.errors.Unavailable` when the executor refuses the run (not an attempt).
    """
    runnable = db.read_now(lambda conn: load_runnable(conn, script_id))
    if runnable is None:
        return f"script {script_id!r} does not exist"
    secrets = db.read_now(lambda conn: app_secrets(conn, runnable.app_id))
    ctx: dict[str, Any] = {
        "sdk_version": SDK_VERSION,
        "app_id": runnable.app_id,
        "script_id": runnable.script_id,
        "event": event,
        "is_dead_letter_handler": trigger == "dead_letter",
        "secrets": secrets,
    }
    ref = ScriptRef(
        app_id=runnable.app_id,
        script_id=runnable.script_id,
        version=runnable.version,
        source=runnable.source,
        timeout_ms=runnable.timeout_ms,
        memory_mb=runnable.memory_mb,
        isolation="fresh" if runnable.isolation == "fresh" else "warm",
    )
    job = Job(ref, ctx, trigger=trigger, trigger_id=trigger_id, event_id=event_id, depth=depth)
    outcome = await executor.run(job)
    if outcome.status == "ok":
        return None
    return f"{outcome.status}: {outcome.error or 'failed'}"[:2000]
