"""One delivery attempt of an event: run, then done, retry later, or dead letter."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
from typing import TYPE_CHECKING, Any, Literal

from picloud.errors import Unavailable
from picloud.ids import new_id
from picloud.store.db import now_ms
from picloud.store.outbox import Event, dead_letter_event, event_payload, mark_retry
from picloud.store.triggers import (
    DeadLetter,
    Trigger,
    dead_letter,
    record_handler,
    unhandled_dead_letters,
)
from picloud.triggers.runner import run_handler

if TYPE_CHECKING:
    from picloud.triggers.dispatcher import Dispatcher

__all__ = [
    "MAX_DEPTH",
    "LOOP_ERROR",
    "attempt",
    "backoff_ms",
    "resume_dead_letter_handlers",
]

log = logging.getLogger("picloud.triggers")

MAX_DEPTH = 8  # an event this deep in a chain of triggers is not run
LOOP_ERROR = "trigger_loop"
_REFUSED_RETRY_MS = 200  # the executor was full: try again soon, without using an attempt


def backoff_ms(t: Trigger, attempts: int) -> int:
    """The wait before the next try after `attempts` failed ones: base, doubling, capped."""
    return int(min(t.backoff_base_ms * 2 ** min(attempts - 1, 40), t.backoff_max_ms))


async def attempt(d: Dispatcher, t: Trigger, ev: Event) -> Event | None:
    """Try `ev` once; None when it is finished with (delivered or dead), else its new state."""
    # Read now, not when scanned: payloads can be as large as a KV value.
    payload = d.db.read_now(lambda conn: event_payload(conn, ev.id))
    if payload is None:
        return None  # gone with its trigger
    if ev.depth >= MAX_DEPTH:
        d.stats.loops_cut += 1
        await _dead_letter(d, t, ev, payload, ev.attempts, LOOP_ERROR)
        return None
    try:
        async with d.slot(t.app_id, t.id):
            if ev.attempts == 0 and ev.next_at == ev.created_at:
                d.stats.started(now_ms() - ev.created_at)
            event = json.loads(payload)
            error = await _run(d, t.kind, t.script_id, event, t.id, ev.id, ev.depth)
    except Unavailable:
        d.stats.refused += 1
        return dataclasses.replace(ev, next_at=now_ms() + _REFUSED_RETRY_MS)
    if error is None:
        d.stats.delivered += 1
        d.delivered(ev.id)
        return None
    d.stats.failed_attempts += 1
    attempts = ev.attempts + 1
    if attempts >= t.max_attempts:
        await _dead_letter(d, t, ev, payload, attempts, error)
        return None
    next_at = now_ms() + backoff_ms(t, attempts)
    alive = await d.db.write(
        lambda conn: mark_retry(conn, ev.id, attempts, next_at, error), routine=True
    )
    if not alive:
        return None  # the trigger was deleted meanwhile
    d.stats.retried += 1
    log.info("trigger %s: event %d failed (attempt %d), retrying", t.id, ev.id, attempts)
    return dataclasses.replace(ev, attempts=attempts, next_at=next_at)


async def _run(
    d: Dispatcher,
    kind: str,
    script_id: str,
    event: dict[str, Any],
    trigger_id: str | None,
    event_id: int | None,
    depth: int,
) -> str | None:
    """The handler's run: None when ok, else the error. Unavailable when refused."""
    if d.executor is None:
        raise Unavailable("no executor")
    trigger: Literal["kv", "cron", "dead_letter"] = (
        "kv" if kind == "kv" else "cron" if kind == "cron" else "dead_letter"
    )
    try:
        return await run_handler(
            d.db,
            d.executor,
            script_id=script_id,
            event=event,
            trigger=trigger,
            trigger_id=trigger_id,
            event_id=event_id,
            depth=depth,
        )
    except (Unavailable, asyncio.CancelledError):
        raise
    except Exception as exc:  # noqa: BLE001 - a broken run is a failed attempt, not a dead dispatcher
        log.exception("trigger %s: the executor failed", trigger_id)
        return f"internal: {type(exc).__name__}: {exc}"[:2000]


async def _dead_letter(
    d: Dispatcher, t: Trigger, ev: Event, payload: str, attempts: int, error: str
) -> None:
    dl_id = new_id("dl_")
    handler = t.dead_letter_script_id

    def move(conn: Any) -> bool:
        return dead_letter_event(
            conn, ev.id, dl_id, t.script_id, handler, attempts, error, now_ms()
        )

    if not await d.db.write(move, routine=True):
        return
    d.stats.dead_lettered += 1
    log.warning(
        "trigger %s: event %d dead-lettered as %s after %d attempt(s): %s",
        t.id,
        ev.id,
        dl_id,
        attempts,
        error,
    )
    if handler is not None:
        original = json.loads(payload)
        dl = DeadLetter(
            dl_id, t.app_id, t.id, t.script_id, ev.order_key, payload, attempts, error,
            ev.depth, now_ms(), handler, None, None, None, 0,
        )  # fmt: skip
        d.spawn(_run_dead_letter_handler(d, dl, original, ev.id), f"dead-letter-{dl_id}")


async def _run_dead_letter_handler(
    d: Dispatcher, dl: DeadLetter, original: Any, event_id: int | None
) -> None:
    """Run the dead-letter script once; its failure is recorded, never dead-lettered again."""
    assert dl.handler_script_id is not None
    if dl.id in d.dead_letter_runs:
        return
    d.dead_letter_runs.add(dl.id)
    try:
        await _dead_letter_run(d, dl, dl.handler_script_id, original, event_id)
    finally:
        d.dead_letter_runs.discard(dl.id)


async def _dead_letter_run(
    d: Dispatcher, dl: DeadLetter, script_id: str, original: Any, event_id: int | None
) -> None:
    event = {
        "type": "dead_letter",
        "original": original,
        "trigger_id": dl.trigger_id,
        "script_id": dl.script_id,
        "attempts": dl.attempts,
        "error": dl.error,
    }
    wait_ms = _REFUSED_RETRY_MS
    while True:
        try:
            async with d.slot(dl.app_id, None):
                error = await _run(
                    d, "dead_letter", script_id, event, dl.trigger_id, event_id, dl.depth
                )
            break
        except Unavailable:
            await asyncio.sleep(wait_ms / 1000)
            wait_ms = min(wait_ms * 2, 5000)
    d.stats.dead_letter_runs += 1
    status = "ok" if error is None else "error"
    await d.db.write(lambda conn: record_handler(conn, dl.id, status, error), routine=True)


async def resume_dead_letter_handlers(d: Dispatcher) -> None:
    """Dead-letter scripts that had not run when the daemon last stopped run now."""
    pending = await d.db.read(lambda conn: unhandled_dead_letters(conn, 1000))
    for dl in pending:
        if dl.handler_script_id is None or dl.id in d.dead_letter_runs:
            continue
        fresh = d.db.read_now(functools.partial(dead_letter, dead_letter_id=dl.id))
        if fresh is None or fresh.handler_status is not None:
            continue  # ran (or was deleted) since the list was read
        d.spawn(_run_dead_letter_handler(d, dl, json.loads(dl.event), None), f"dead-letter-{dl.id}")
