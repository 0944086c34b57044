"""The store: one SQLite file, one writer path, reader connections, migrations."""

from picloud.store.db import Database, StoreError

__all__ = ["Database", "StoreError"]
