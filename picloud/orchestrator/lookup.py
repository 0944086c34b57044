"""The execute path's reads (script, secrets, key check), cached until the database changes.

Every commit of a write that may change a script, key or secret drops the cache
(`Database.on_config_commit` runs on the loop before any writer resumes), so a new
version, a secret or a revoked key is seen by the very next request; KV writes,
events and invocation records (`routine` writes) leave it be. As a backstop
against writes from outside the daemon, `PRAGMA data_version` is checked at most
once a second.
"""

from __future__ import annotations

import time

from picloud.executor.api import ScriptRef
from picloud.store import Database
from picloud.store import apps as store_apps
from picloud.store import invocations as store_invocations
from picloud.store import scripts as store_scripts
from picloud.store.scripts import RunnableScript

__all__ = ["Lookup"]

_MAX_KEYS = 1024  # positive key checks kept; past this the cache starts over


class Lookup:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._version = -1
        self._scripts: dict[str, RunnableScript | None] = {}
        self._secrets: dict[str, dict[str, str]] = {}
        self._keys: set[tuple[str, str]] = set()
        self._refs: dict[str, ScriptRef] = {}
        self._checked = 0.0
        db.on_config_commit(self.invalidate)

    def invalidate(self) -> None:
        self._scripts.clear()
        self._secrets.clear()
        self._keys.clear()
        self._refs.clear()

    def refresh(self) -> None:
        """Drop everything if another process changed the database (call once per request)."""
        now = time.monotonic()
        if now - self._checked < 1.0:
            return
        self._checked = now
        version = self.db.read_now(store_invocations.data_version)
        if version != self._version:
            self._version = version
            self.invalidate()

    def script(self, script_id: str) -> RunnableScript | None:
        if script_id in self._scripts:
            return self._scripts[script_id]
        script = self.db.read_now(lambda conn: store_scripts.load_runnable(conn, script_id))
        if len(self._scripts) < 4096:
            self._scripts[script_id] = script
        return script

    def ref(self, script: RunnableScript) -> ScriptRef:
        """The executor's view of a cached script, built once per script until invalidated."""
        ref = self._refs.get(script.script_id)
        if ref is None or ref.version != script.version or ref.source is not script.source:
            ref = ScriptRef(
                script.app_id, script.script_id, script.version, script.source,
                script.timeout_ms, script.memory_mb,
                "fresh" if script.isolation == "fresh" else "warm",
            )  # fmt: skip
            if len(self._refs) < 4096:
                self._refs[script.script_id] = ref
        return ref

    def secrets(self, app_id: str) -> dict[str, str]:
        secrets = self._secrets.get(app_id)
        if secrets is None:
            secrets = self.db.read_now(lambda conn: store_apps.app_secrets(conn, app_id))
            self._secrets[app_id] = secrets
        return secrets

    def key_matches(self, app_id: str, key_hash: str) -> bool:
        if (app_id, key_hash) in self._keys:
            return True
        ok = self.db.read_now(lambda conn: store_apps.key_matches(conn, app_id, key_hash))
        if ok:
            if len(self._keys) >= _MAX_KEYS:
                self._keys.clear()
            self._keys.add((app_id, key_hash))
        return ok
