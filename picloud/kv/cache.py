"""The daemon's cache of recently read KV values, so a repeated `get` skips SQLite.

Only committed values enter it, and it never answers for a key with a write in
flight: `SqliteKv` marks a key (dropping its entry) before it queues a write and
unmarks it once the write has settled (`Database.write`'s `settled`, called even
if the caller was cancelled: the store commits a queued write regardless); a get
meanwhile reads SQLite, and nothing is kept for that key until it is unmarked.
Anything else that changes KV rows (deleting an app) is a write that is not
`routine`, after whose commit the store's `on_config_commit` clears it all; a
write by another process shows within a second (`SqliteKv` watches `PRAGMA
data_version`). TTLs are kept with the value, so an expired entry reads as
absent at once, as in SQLite, and the purge drops the entries of the rows it
deleted. The cache is bounded by the memory of its keys and values; the oldest
entry goes first.
"""

from __future__ import annotations

import collections
import sys

__all__ = ["ReadCache"]

# Python's overhead per entry (tuples, dict slot), counted against the budget with the
# sizes of the key's and value's str objects.
ENTRY_OVERHEAD = 150
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

    def mark(self, key: _Key) -> None:
        """A write of `key` is queued: no entry for it until `unmark` (once it has settled)."""
        self._forget(key)
        self._writing[key] += 1

    def unmark(self, key: _Key) -> None:
        left = self._writing[key] - 1
        if left > 0:
            self._writing[key] = left
        else:
            del self._writing[key]

    def drop_expired(self, now: int) -> None:
        """After the purge deleted expired rows: a clock stepped back must not revive them."""
        gone = [k for k, (_, exp) in self._entries.items() if exp is not None and exp <= now]
        for key in gone:
            self._forget(key)

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
    # getsizeof, not len: a non-ASCII str takes 2-4 bytes a character. The app id is the
    # channel's own string, shared by every entry of the app.
    return ENTRY_OVERHEAD + sys.getsizeof(key[1]) + sys.getsizeof(key[2]) + sys.getsizeof(value)
