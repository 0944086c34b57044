"""WAL checkpoints off the event loop, about as often as `wal_autocheckpoint` would run them.

When writes commit on the event loop (durability "normal"), SQLite's automatic
checkpoint would run inside a commit there, and a checkpoint syncs the WAL and
the database file: tens of milliseconds on an SD card, with every request
waiting. So the loop's connection has automatic checkpoints off, and this
thread checks the WAL's length once a second and checkpoints (PASSIVE: never
blocks a writer or a reader) once it holds `pages` frames — the same trigger as
`PRAGMA wal_autocheckpoint`, so hot pages still reach the database file once
per checkpoint, not once per commit (docs/storage.md).

The length is read from the WAL-index header in the `-shm` file (`mxFrame`,
a native-endian u32 at offset 16; https://sqlite.org/walformat.html).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import threading
from pathlib import Path

from picloud.affinity import ANY_CPU, run_on

__all__ = ["Checkpointer"]

log = logging.getLogger(__name__)
_MX_FRAME = 16


class Checkpointer:
    def __init__(self, conn: sqlite3.Connection, path: Path, pages: int, every_s: float = 1.0):
        self.conn = conn  # its own connection: used on this thread only
        # Next to the real file: SQLite follows a symlinked database path for its -wal/-shm.
        self.shm = Path(f"{Path(path).resolve()}-shm")
        self.pages = pages
        self.every_s = every_s
        self.checkpoints = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store-checkpoint", daemon=True)
        self._done_at = -1  # the WAL length at the last checkpoint (nothing new: skip)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (blocking: call it from a worker thread)."""
        self._stop.set()
        self._thread.join()
        self.conn.close()

    def wal_frames(self) -> int:
        try:
            with self.shm.open("rb") as fh:
                head = os.pread(fh.fileno(), 4, _MX_FRAME)
        except OSError:
            return 0
        return int.from_bytes(head, sys.byteorder) if len(head) == 4 else 0

    def _run(self) -> None:
        run_on(ANY_CPU)  # not on the loop's CPU (threads inherit its pin)
        while not self._stop.wait(self.every_s):
            frames = self.wal_frames()
            if frames < self.pages or frames == self._done_at:
                continue
            try:
                self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error as exc:
                log.warning("store: checkpoint failed: %s", exc)
                continue
            self._done_at = frames
            self.checkpoints += 1
