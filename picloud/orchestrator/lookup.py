"""The execute path's reads (script, secrets, key check), cached until the database changes.

One `PRAGMA data_version` per request tells whether any other connection has
committed since; if so the cache is dropped. So a new version, a secret or a
revoked key is seen by the very next request, and a warm path costs one tiny
query instead of three.
"""

from __future__ import annotations

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

    def refresh(self) -> None:
        """Drop everything if the database changed (call once per request)."""
        version = self.db.read_now(store_invocations.data_version)
        if version != self._version:
            self._version = version
            self._scripts.clear()
            self._secrets.clear()
            self._keys.clear()

    def script(self, script_id: str) -> RunnableScript | None:
        if script_id in self._scripts:
            return self._scripts[script_id]
        script = self.db.read_now(lambda conn: store_scripts.load_runnable(conn, script_id))
        if len(self._scripts) < 4096:
            self._scripts[script_id] = script
        return script

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
