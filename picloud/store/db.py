"""The SQLite database: one writer with group commit, reader threads.

Every write is a function run by the single writer inside one `BEGIN
IMMEDIATE` transaction that it shares with whatever other writes were queued
at the same moment (group commit: one WAL commit, and so at most one fsync,
per batch). Each write runs in its own SAVEPOINT, so one failing write rolls
back alone. The writer is the event loop itself when commits do not sync
(durability "normal": a commit is a write() into the WAL, ~50 µs; handing it
to a thread cost more in wake-ups and GIL hand-offs than the commit itself),
with WAL checkpoints moved to a thread (`checkpoint.py`), and `bulk` writes
(a batch of records, a retention step: milliseconds of work) handed to a
thread while the loop's own commits wait for them; with durability "full"
every commit waits for an fsync, so a writer thread runs them all. Reads run
on a small pool of reader threads, each with its own connection; `read_now`
runs a point lookup on the calling thread (the event loop) where a thread hop
would cost more than the query.

We run whole transactions on our own threads instead of using aiosqlite,
whose one-thread-hop-per-statement model interleaves the statements of
coroutines sharing a connection and costs a hop per statement.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar

from picloud.affinity import ANY_CPU, run_on
from picloud.store import migrate
from picloud.store.checkpoint import Checkpointer

__all__ = ["Database", "StoreError", "WriteFn"]

log = logging.getLogger(__name__)
T = TypeVar("T")
WriteFn = Callable[[sqlite3.Connection], T]

# Most writes queued at once that share one commit.
_MAX_BATCH = 256
_CHECKPOINT_PAGES = 2000  # as `PRAGMA wal_autocheckpoint` in connect()
_BUSY_TIMEOUT_S = 5.0  # how long a write waits for another process's lock
_READERS = 2


class StoreError(Exception):
    """The store cannot be opened or has failed."""


def connect(path: Path, durability: Literal["normal", "full"] = "normal") -> sqlite3.Connection:
    """A connection with the pragmas chosen for flash (docs/storage.md gives the reasons)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    # Must come before journal_mode=WAL, which writes the header of a new file: only then
    # does a new file get incremental auto-vacuum (retention relies on it). No-op otherwise.
    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={durability.upper()}")
    conn.execute("PRAGMA foreign_keys=ON")
    _wait_for_locks(conn, True)
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA cache_size=-4096")
    # Checkpoint less often so hot pages are rewritten once per checkpoint, not per commit.
    conn.execute(f"PRAGMA wal_autocheckpoint={_CHECKPOINT_PAGES}")
    conn.execute("PRAGMA journal_size_limit=16777216")
    return conn


class Database:
    """The one handle every store module uses: `write`, `read`, `read_now`."""

    def __init__(self, path: Path, durability: Literal["normal", "full"] = "normal") -> None:
        self.path = path
        self.durability = durability
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        # Durability "normal": writes commit on the event loop, checkpoints on a thread.
        self.on_loop = durability == "normal"
        self._pending: list[_Job] = []
        self._scheduled = False  # a _commit_pending is due on the loop
        self._bulk: list[_Job] = []
        self._bulk_running: asyncio.Future[list[tuple[_Job, bool, Any]]] | None = None
        self._bulk_pool: ThreadPoolExecutor | None = None
        self._closing = False
        self._busy_since: float | None = None
        self._checkpointer: Checkpointer | None = None
        self._write_conn: sqlite3.Connection | None = None
        self._now_conn: sqlite3.Connection | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._commit_listeners: list[Callable[[], None]] = []
        self._config_listeners: list[Callable[[], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.commits = 0
        self.writes = 0

    # ---- lifecycle

    def open(self, on_migration: Callable[[int], None] | None = None) -> int:
        """Open (creating if needed), migrate to the latest schema; returns the schema version."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = connect(self.path, self.durability)
            version = migrate.upgrade(conn, on_migration)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from exc
        self._write_conn = conn
        self._now_conn = connect(self.path, self.durability)
        self._loop = asyncio.get_running_loop()
        # Any CPU: the loop thread may be pinned (picloud.affinity) and threads inherit that.
        self._readers = ThreadPoolExecutor(
            _READERS, thread_name_prefix="store-read", initializer=run_on, initargs=(ANY_CPU,)
        )
        if self.on_loop:
            conn.execute("PRAGMA wal_autocheckpoint=0")  # never inside a commit on the loop
            _wait_for_locks(conn, False)  # never wait for a lock on the loop either
            ckpt = connect(self.path, self.durability)
            self._checkpointer = Checkpointer(ckpt, self.path, _CHECKPOINT_PAGES)
            self._checkpointer.start()
            self._bulk_pool = ThreadPoolExecutor(
                1, thread_name_prefix="store-bulk", initializer=run_on, initargs=(ANY_CPU,)
            )
        else:
            self._writer = threading.Thread(
                target=self._write_loop, name="store-write", daemon=True
            )
            self._writer.start()
        return version

    async def close(self) -> None:
        self._closing = True
        while self._bulk_running is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._bulk_running)
            await asyncio.sleep(0)  # its done-callback settles it
        left, self._pending, self._bulk = self._pending + self._bulk, [], []
        if left and self._write_conn is not None and self.on_loop:
            # The last writes may wait for another process's lock, as a thread's would.
            _wait_for_locks(self._write_conn, True)
        while left and self._write_conn is not None:
            self._settle(self._run_batch(self._write_conn, left[:_MAX_BATCH]))
            left = left[_MAX_BATCH:]
        if self._bulk_pool is not None:
            self._bulk_pool.shutdown(wait=True)
            self._bulk_pool = None
        if self._checkpointer is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._checkpointer.stop)
            self._checkpointer = None
        if self._writer is not None:
            self._queue.put(None)
            await asyncio.get_running_loop().run_in_executor(None, self._writer.join)
            self._writer = None
        if self._readers is not None:
            self._readers.shutdown(wait=True)
            self._readers = None
        for conn in [self._write_conn, self._now_conn, *self._reader_conns]:
            if conn is not None:
                conn.close()
        self._write_conn = self._now_conn = None
        self._reader_conns.clear()

    def on_commit(self, listener: Callable[[], None]) -> None:
        """Call `listener` on the event loop after every commit (e.g. wake a dispatcher)."""
        self._commit_listeners.append(listener)

    def on_config_commit(self, listener: Callable[[], None]) -> None:
        """Call `listener` on the loop after a commit with any write not marked `routine`,
        before any of its writers resumes (e.g. drop a cache of scripts and keys)."""
        self._config_listeners.append(listener)

    @property
    def schema_version(self) -> int:
        return self.read_now(migrate.current_version)

    # ---- writes

    async def write(
        self,
        fn: Callable[[sqlite3.Connection], T],
        *,
        routine: bool = False,
        bulk: bool = False,
        settled: Callable[[], None] | None = None,
    ) -> T:
        """Run `fn` in a transaction of the writer's; returns once committed.

        `routine`: the write touches only data the request path does not cache (KV
        rows, events, invocation records), so its commit leaves the `on_config_commit`
        listeners alone. Anything else (the default) may change a script, key or secret.
        `bulk`: the write may take milliseconds (many rows); where writes commit on the
        loop, it runs on a thread instead and the loop's commits wait until it is done.
        `settled`: called once on the loop when the write has committed or failed, even
        if the caller was cancelled meanwhile (a queued write still runs).
        """
        if self._write_conn is None or self._loop is None or self._closing:
            if settled is not None:
                settled()
            raise StoreError("the store is not open")
        future: asyncio.Future[T] = self._loop.create_future()
        job = _Job(fn, future, routine, settled)
        if not self.on_loop:
            self._queue.put(job)
        elif bulk:
            self._bulk.append(job)
            self._start_bulk()
        else:
            self._pending.append(job)
            self._kick()
        return await future

    # ---- writes on the loop (durability "normal")

    def _kick(self) -> None:
        """Commit at the loop's next turn, with every write queued until then."""
        if self._pending and not self._scheduled and self._bulk_running is None:
            assert self._loop is not None
            self._scheduled = True
            self._loop.call_soon(self._commit_pending)

    def _commit_pending(self) -> None:
        self._scheduled = False
        if self._write_conn is None or self._bulk_running is not None or self._closing:
            return
        batch = self._take_batch()
        if batch:
            try:
                results = self._run_batch(self._write_conn, batch, wait=False)
            except _Busy:
                self._pending[:0] = batch  # first again, in the same order
                self._retry_busy()
                return
            self._busy_since = None
            self._settle(results)
        self._kick()
        if not self._pending:
            self._start_bulk()

    def _take_batch(self) -> list[_Job]:
        batch, self._pending = self._pending[:_MAX_BATCH], self._pending[_MAX_BATCH:]
        return batch

    def _retry_busy(self) -> None:
        """Another process holds the write lock: try again shortly, without blocking the
        loop; past the busy timeout, fail the batch as a blocking wait would have."""
        assert self._loop is not None
        now = self._loop.time()
        if self._busy_since is None:
            self._busy_since = now
        waited = now - self._busy_since
        if waited > _BUSY_TIMEOUT_S:
            self._busy_since = None
            error = StoreError("the database is locked by another process")
            self._settle([(job, False, error) for job in self._take_batch()])
            self._kick()
            return
        self._scheduled = True
        self._loop.call_later(min(0.05, 0.001 + waited / 4), self._commit_pending)

    def _start_bulk(self) -> None:
        """One bulk write on the bulk thread; nothing else writes until it commits."""
        if self._bulk_running is not None or not self._bulk or self._closing:
            return
        if self._pending or self._write_conn is None or self._bulk_pool is None:
            return  # the loop's batch goes first and starts it after (_commit_pending)
        assert self._loop is not None
        job = self._bulk.pop(0)
        running = self._loop.run_in_executor(self._bulk_pool, self._run_bulk, job)
        self._bulk_running = running
        running.add_done_callback(functools.partial(self._bulk_done, job))

    def _run_bulk(self, job: _Job) -> list[tuple[_Job, bool, Any]]:
        """On the bulk thread: here a busy wait blocks nobody (the loop's writes queue)."""
        conn = self._write_conn
        assert conn is not None
        _wait_for_locks(conn, True)
        try:
            return self._run_batch(conn, [job])
        finally:
            _wait_for_locks(conn, False)

    def _bulk_done(self, job: _Job, running: asyncio.Future[list[tuple[_Job, bool, Any]]]) -> None:
        self._bulk_running = None
        if not running.cancelled() and running.exception() is None:
            self._settle(running.result())
        else:  # the thread itself failed (never seen)
            self._settle([(job, False, StoreError("the bulk writer failed"))])
        self._kick()
        self._start_bulk()

    def _write_loop(self) -> None:
        assert self._write_conn is not None
        run_on(ANY_CPU)
        conn = self._write_conn
        while True:
            job = self._queue.get()
            if job is None:
                return
            batch = [job]
            stop = False
            while len(batch) < _MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            results = self._run_batch(conn, batch)
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._settle, results)
            if stop:
                return

    def _run_batch(
        self, conn: sqlite3.Connection, batch: list[_Job], *, wait: bool = True
    ) -> list[tuple[_Job, bool, Any]]:
        """One transaction for the batch. `wait=False` (the loop's commits): raise _Busy at
        once when another process holds the write lock, instead of busy-waiting for it."""
        results: list[tuple[_Job, bool, Any]] = []
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if not wait and getattr(exc, "sqlite_errorcode", 0) == sqlite3.SQLITE_BUSY:
                    raise _Busy from None
                raise
            for job in batch:
                conn.execute("SAVEPOINT job")
                try:
                    value = job.fn(conn)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    results.append((job, False, exc))
                else:
                    conn.execute("RELEASE job")
                    results.append((job, True, value))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.exception("store: a write batch failed")
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            results = [(job, False, StoreError(f"write failed: {exc}")) for job in batch]
        else:
            self.commits += 1
            self.writes += len(batch)
        return results

    def _settle(self, results: list[tuple[_Job, bool, Any]]) -> None:
        if any(not job.routine for job, _, _ in results):
            for listener in self._config_listeners:
                listener()
        for job, ok, value in results:
            if job.settled is not None:
                job.settled()
            if job.future.done():
                continue
            if ok:
                job.future.set_result(value)
            else:
                job.future.set_exception(value)
        for listener in self._commit_listeners:
            listener()

    # ---- reads

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a query function on a reader thread with its own connection."""
        if self._readers is None or self._loop is None:
            raise StoreError("the store is not open")
        return await self._loop.run_in_executor(self._readers, self._read_in_thread, fn)

    def _read_in_thread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, self.durability)
            self._local.conn = conn
            with self._reader_lock:
                self._reader_conns.append(conn)
        return fn(conn)

    def read_now(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A point lookup on the calling thread: only for queries that take microseconds."""
        if self._now_conn is None:
            raise StoreError("the store is not open")
        return fn(self._now_conn)

    async def ping(self) -> bool:
        """Does the writer answer within 5 s? (for the watchdog and /healthz)."""
        try:
            async with asyncio.timeout(5.0):
                await self.write(lambda c: c.execute("SELECT 1").fetchone(), routine=True)
        except (TimeoutError, StoreError, sqlite3.Error):
            return False
        return True


def _wait_for_locks(conn: sqlite3.Connection, wait: bool) -> None:
    """Whether `conn` busy-waits (up to _BUSY_TIMEOUT_S) for another process's lock."""
    conn.execute(f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT_S * 1000) if wait else 0}")


class _Busy(Exception):
    """Another process holds the database's write lock (the loop does not wait for it)."""


class _Job:
    __slots__ = ("fn", "future", "routine", "settled")

    def __init__(
        self,
        fn: Callable[[sqlite3.Connection], Any],
        future: asyncio.Future[Any],
        routine: bool,
        settled: Callable[[], None] | None = None,
    ) -> None:
        self.fn = fn
        self.future = future
        self.routine = routine
        self.settled = settled


def now_ms() -> int:
    return time.time_ns() // 1_000_000
