"""The daemon's cache of recently read KV values, so a repeated `get` skips SQLite.

Only committed values enter it, and it never answers for a key with a write in
flight: `SqliteKv` marks a key (dropping its entry) before it queues a write and
unmarks it once the write is acknowledged; a get meanwhile reads SQLite, and
nothing is kept for that key until it is unmarked. Anything else that changes
KV rows (deleting an app) is a write that is not `routine`, after whose commit
the store's `on_config_commit` clears it all. TTLs are kept with the value, so
an expired entry reads as absent at once, as in SQLite. The cache is bounded by
the bytes of its keys and values; the oldest entry goes first.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator

__all__ = ["ReadCache"]

# Python's overhead per entry (tuple, key tuple, dict slot), counted against the budget.
ENTRY_OVERHEAD = 200
# A value this large is cheaper to read again than to keep (SQLite's page cache has it).
MAX_ENTRY_CHARS = 16 * 1024

_Key = tuple[str, str, str]  # app, collection, key


class ReadCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0
        self.hits = 0
        self.misses = 0
        # key -> (value JSON or None for absent, expires_at unix ms or None)
        self._entries: dict[_Key, tuple[str | None, int | None]] = {}
        self._writing: collections.Counter[_Key] = collections.Counter()

    def lookup(self, key: _Key, now: int) -> tuple[bool, str | None]:
        """(True, value or None if absent) from the cache, or (False, None) to read SQLite."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return False, None
        self.hits += 1
        value, expires_at = entry
        if expires_at is not None and expires_at <= now:
            return True, None
        return True, value

    def fill(self, key: _Key, value: str | None, expires_at: int | None) -> None:
        """Keep what SQLite just answered, unless a write to the key is in flight."""
        if self.max_bytes <= 0 or key in self._writing:
            return
        size = _size(key, value)
        if value is not None and len(value) > MAX_ENTRY_CHARS:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.used -= _size(key, old[0])
        self._entries[key] = (value, expires_at)
        self.used += size
        while self.used > self.max_bytes:
            oldest = next(iter(self._entries))
            self.used -= _size(oldest, self._entries.pop(oldest)[0])

    @contextlib.contextmanager
    def writing(self, key: _Key) -> Iterator[None]:
        """Around a write of `key`: no entry for it until the write is acknowledged."""
        self._forget(key)
        self._writing[key] += 1
        try:
            yield
        finally:
            left = self._writing[key] - 1
            if left:
                self._writing[key] = left
            else:
                del self._writing[key]

    def clear(self) -> None:
        self._entries.clear()
        self.used = 0

    def __len__(self) -> int:
        return len(self._entries)

    def _forget(self, key: _Key) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self.used -= _size(key, old[0])


def _size(key: _Key, value: str | None) -> int:
    return ENTRY_OVERHEAD + len(key[1]) + len(key[2]) + (len(value) if value is not None else 0)
