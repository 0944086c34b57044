"""The executor seam: what the orchestrator hands over and gets back.

The orchestrator (execute route, trigger dispatcher) only sees `Executor`;
today it is the in-process pool of sandboxed workers, later it may be remote.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, Protocol

__all__ = ["Executor", "Job", "Outcome", "ScriptRef", "ScriptResponse", "Status"]

Status = Literal["ok", "script_error", "timeout", "resource_limit", "internal"]


@dataclasses.dataclass(frozen=True, slots=True)
class ScriptRef:
    """One deployed script version and its limits."""

    app_id: str
    script_id: str
    version: int
    source: str
    timeout_ms: int
    memory_mb: int
    isolation: Literal["warm", "fresh"] = "warm"


@dataclasses.dataclass(slots=True)
class Job:
    """One invocation to run: `ctx` is complete (request or event, secrets) but for ids."""

    script: ScriptRef
    ctx: dict[str, Any]
    trigger: Literal["http", "kv", "cron", "dead_letter"] = "http"
    trigger_id: str | None = None
    event_id: int | None = None
    depth: int = 0  # trigger chain depth: KV writes made by this run carry depth + 1


@dataclasses.dataclass(slots=True)
class ScriptResponse:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclasses.dataclass(slots=True)
class Outcome:
    invocation_id: str
    status: Status
    response: ScriptResponse | None  # set when status == "ok"
    error: str | None  # one line for the caller; the traceback is in `log`
    log: str
    duration_ms: float
    cpu_ms: float | None = None
    peak_memory_kb: int | None = None


class Executor(Protocol):
    async def run(self, job: Job) -> Outcome:
        """Run `job` in a sandboxed worker of its app; records the invocation.

        Raises `picloud.errors.Unavailable` when admission control refuses it.
        """
        ...
