"""Run sync ORM code from asyncio daemons on bounded thread pools (ARCHITECTURE: Async).

Reads (`run_db`) and writes (`run_db_write`) are kept apart, so a read never waits in the
queue behind writers: on SQLite every writer would hold a pool thread while it queues on
the one write lock (`mailhost.store.tx`), and a burst of STOREs and APPENDs would leave no
thread for FETCH.

SQLite runs one writer at a time anyway, so its writes go to one writer thread that
commits whatever has queued up meanwhile in one transaction (group commit,
`tx.write_batch`): one lock hand-over and one fsync for many commands, each still
acknowledged only after its commit. PostgreSQL locks rows, not the database, so its
writes run on a pool as wide as the read pool.

On SQLite, and on a PostgreSQL server on this machine (BUZON_DB_INLINE=auto), the daemons
do their database work on the event-loop thread instead, on that thread's own connection:
short reads whose size the caller bounds (`run_db_short`) run where they are asked for,
and writes queue for a group commit that runs as the loop's next callback, every write
asked for meanwhile in one transaction. A SQLite statement costs microseconds, less than
the hand-off to a thread and back (two thread wake-ups), and a thread stepping through
rows fights the event loop for the GIL at every row: with threads, a STORE that takes 0.5
ms alone took 50-100 ms under load, at tens of thousands of context switches a second
(bench/README.md). The loop is blocked for the length of a batch; SQLite's WAL fsync
then runs on a thread of its own while the loop goes on serving, and the batch is
acknowledged when it returns (a 20 s load spent 18 % of the loop's time in fsync before).
Long reads (`run_db`) still go to the pool. A PostgreSQL server on another machine makes
every query wait a network round trip, which would stall the loop, so then reads and
writes stay on the pools. On PostgreSQL a group commit is one
transaction too; the write lock (mailhost/store/tx.py) keeps batches of this machine's
processes from deadlocking on each other's mailbox rows (PostgreSQL would break such a
deadlock, and the batch would run again call by call).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import queue
import threading
import time
from asyncio import events as _events
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, close_old_connections, connections

T = TypeVar("T")
log = logging.getLogger(__name__)
WRITE_BATCH = 64  # most calls one SQLite transaction takes
RETRY_LOCK_SECONDS = 0.0005  # the loop's group commit, when another process is writing
_pool: ThreadPoolExecutor | None = None
_write_pool: ThreadPoolExecutor | None = None
_writer: _BatchWriter | None = None
_writer_lock = threading.Lock()


def pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=settings.BUZON_DB_THREADS, thread_name_prefix="db")
    return _pool


def write_pool() -> ThreadPoolExecutor:
    global _write_pool
    if _write_pool is None:
        _write_pool = ThreadPoolExecutor(
            max_workers=settings.BUZON_DB_THREADS, thread_name_prefix="dbw"
        )
    return _write_pool


class _BatchWriter:
    """One thread running queued writes in batches, one SQLite transaction per batch."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future]] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self.run, name="dbw-sqlite", daemon=True)
        self.thread.start()

    def submit(self, call: Callable[[], Any]) -> Future:
        future: Future = Future()
        self.jobs.put((call, future))
        return future

    def run(self) -> None:
        from mailhost.store import tx

        while True:
            batch = [self.jobs.get()]
            while len(batch) < WRITE_BATCH:
                try:
                    batch.append(self.jobs.get_nowait())
                except queue.Empty:
                    break
            batch = [(call, f) for call, f in batch if f.set_running_or_notify_cancel()]
            if not batch:
                continue
            try:
                close_old_connections()
                results = tx.write_batch([call for call, _ in batch])
            except BaseException as e:  # noqa: BLE001 - reported to every waiting caller
                results = [(False, e)] * len(batch)
            for (_, future), (ok, value) in zip(batch, results, strict=True):
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)  # type: ignore[arg-type]


def _batch_writer() -> _BatchWriter:
    global _writer
    with _writer_lock:
        if _writer is None:
            _writer = _BatchWriter()
        return _writer


def _call(fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
    close_old_connections()  # long-lived process: drop stale or broken connections
    return fn(*args, **kwargs)


async def run_db(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run `fn` (a read) off the event loop, on the bounded pool (not asgiref's one thread)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(pool(), functools.partial(_call, fn, args, kwargs))


def runs_inline() -> bool:
    """True when short reads and writes run on the event-loop thread: BUZON_DB_INLINE
    `yes`, or `auto` (the default) with SQLite or a PostgreSQL server on this machine
    (loopback or a Unix socket, where a short query costs ~0.1 ms of waiting)."""
    global _inline
    if _inline is None or _inline[0] is not settings.DATABASES:
        _inline = (settings.DATABASES, _decide_inline())
    return _inline[1]


_inline: tuple[object, bool] | None = None


def _decide_inline() -> bool:
    mode = settings.BUZON_DB_INLINE
    if mode in ("yes", "no"):
        return mode == "yes"
    if _is_sqlite():
        return True
    host = settings.DATABASES["default"].get("HOST") or ""
    return host in ("", "localhost", "127.0.0.1", "::1") or host.startswith("/")


class _LoopWriter:
    """Group commit on the event-loop thread: writes asked for during one pass of the
    loop run in one transaction (`tx.write_batch`) as the loop's next callback."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.jobs: list[tuple[Callable[[], Any], asyncio.Future]] = []
        self.scheduled = False
        self.unsynced: list[tuple[list, list, list]] = []  # committed, awaiting _sync_wal
        self.syncing = False

    def submit(self, call: Callable[[], Any]) -> asyncio.Future:
        future = self.loop.create_future()
        self.jobs.append((call, future))
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.flush)
        return future

    def flush(self) -> None:
        from mailhost.store import events, tx

        self.scheduled = False
        self.jobs = [(call, f) for call, f in self.jobs if not f.cancelled()]
        if not self.jobs:
            return
        if not tx.try_writer_lock():
            # Another process (or a thread of this one) is writing: try again shortly
            # rather than block the loop on the lock.
            self.scheduled = True
            self.loop.call_later(RETRY_LOCK_SECONDS, self.flush)
            return
        try:
            batch, self.jobs = self.jobs[:WRITE_BATCH], self.jobs[WRITE_BATCH:]
            with events.held() as held:
                try:
                    results = call_outside_loop(_commit_unsynced, [call for call, _ in batch])
                except BaseException as e:  # noqa: BLE001 - reported to every waiting caller
                    results = [(False, e)] * len(batch)
        finally:
            tx.release_writer_lock()
        if self.jobs and not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.flush)
        if not _is_sqlite():  # PostgreSQL's COMMIT returned after its WAL flush
            _acknowledge(batch, results, held, None)
            return
        # Durable before acknowledged: fsync the WAL, then answer and publish. The fsync
        # runs on a thread with the writer lock released, so the loop serves reads and
        # commits the next batch meanwhile (which waits for the next fsync: one covers
        # only what was written before it started).
        self.unsynced.append((batch, results, held))
        if not self.syncing:
            self._start_sync()

    def _start_sync(self) -> None:
        pending, self.unsynced = self.unsynced, []
        self.syncing = True
        done = _sync_thread().submit(_sync_wal)
        done.add_done_callback(lambda f: self.loop.call_soon_threadsafe(self._synced, pending, f))

    def _synced(self, pending: list[tuple[list, list, list]], done: Future) -> None:
        self.syncing = False
        error = done.exception()
        if error is not None and not isinstance(error, OSError):
            error = OSError(f"WAL sync failed: {error!r}")
        held = [event for _, _, events in pending for event in events]
        for batch, results, _ in pending:
            _acknowledge(batch, results, [], error)  # type: ignore[arg-type]
        if error is None:
            _publish(held)  # one Redis round trip for all of them
        if self.unsynced:
            self._start_sync()


def _commit_unsynced(calls: list[Callable[[], Any]]) -> list[tuple[bool, object]]:
    """tx.write_batch with synchronous=NORMAL for this commit only: SQLite writes the WAL
    without fsync, and the group commit syncs it (`_sync_wal`) once the writer lock is
    released, before anything is acknowledged."""
    from django.db import connection

    from mailhost.store import tx

    if not _is_sqlite():  # PostgreSQL: its commit waits for its own WAL flush
        return tx.write_batch(calls)
    connection.ensure_connection()
    raw = connection.connection  # sqlite3's own: no Django cursor for two pragmas
    raw.execute("PRAGMA synchronous=NORMAL")
    try:
        return tx.write_batch(calls)
    finally:
        raw.execute(f"PRAGMA synchronous={settings.BUZON_SQLITE_SYNCHRONOUS}")


def _sync_wal() -> None:
    """Make the commits so far durable: fsync SQLite's WAL (or, when a checkpoint removed
    it, the database file, which the checkpoint synced already). Opened afresh each time,
    so it is always the current WAL file."""
    if not _is_sqlite():
        return
    name = str(settings.DATABASES["default"]["NAME"])
    for path in (name + "-wal", name):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            os.fdatasync(fd)  # as SQLite syncs its WAL: data and size, not times
        finally:
            os.close(fd)
        return


def _publish(held: list) -> None:
    from mailhost.store import events

    events.publish_many(held)


def _acknowledge(batch: list, results: list, held: list, error: OSError | None) -> None:
    if error is None:
        _publish(held)
    for (_, future), (ok, value) in zip(batch, results, strict=True):
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)  # committed, but not known to be on disk
        elif ok:
            future.set_result(value)
        else:
            future.set_exception(value)  # type: ignore[arg-type]


_loop_writers: dict[int, _LoopWriter] = {}
_syncer: ThreadPoolExecutor | None = None


def _sync_thread() -> ThreadPoolExecutor:
    """The one thread that fsyncs SQLite's WAL for the loops' group commits."""
    global _syncer
    if _syncer is None:
        _syncer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wal-sync")
    return _syncer


def _loop_writer(loop: asyncio.AbstractEventLoop) -> _LoopWriter:
    writer = _loop_writers.get(id(loop))
    if writer is None or writer.loop is not loop:
        writer = _loop_writers[id(loop)] = _LoopWriter(loop)
    return writer


def _is_sqlite() -> bool:
    return "sqlite" in settings.DATABASES["default"]["ENGINE"]


async def run_db_short(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run `fn`, a read the caller keeps short (a bounded number of rows), on the event-loop
    thread when `runs_inline()`, else as `run_db` does."""
    if not runs_inline():
        return await run_db(fn, *args, **kwargs)
    return call_outside_loop(fn, *args, **kwargs)


def call_outside_loop(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Call sync ORM code from a coroutine, on purpose: Django refuses ORM calls where an
    event loop runs (SynchronousOnlyOperation) to catch accidental blocking; this is the
    one deliberate exception, for short reads and group commits (`runs_inline()`). It
    hides the running loop from that check for the length of the call (the call itself
    must not use asyncio)."""
    loop = _events._get_running_loop()
    if loop is None:  # not on an event loop: nothing to hide
        return fn(*args, **kwargs)
    _events._set_running_loop(None)
    started = time.perf_counter()
    try:
        conn = connections[DEFAULT_DB_ALIAS]
        if conn.errors_occurred:
            # The loop thread's connection lives as long as the daemon, and no request
            # cycle checks it: after a database error, test it and drop it if it is broken
            # (a restarted PostgreSQL), so the next statement reconnects.
            conn.close_if_unusable_or_obsolete()
        return fn(*args, **kwargs)
    finally:
        _events._set_running_loop(loop)
        _slow_inline(fn, time.perf_counter() - started)


SLOW_INLINE_SECONDS = 0.05


def _slow_inline(fn: Callable, seconds: float) -> None:
    """Log an inline call that held the event loop too long (a read whose caller's bound is
    wrong, or a group commit whose fsync was slow)."""
    if seconds > SLOW_INLINE_SECONDS:
        log.warning(
            "inline call %s held the event loop for %.0f ms",
            getattr(fn, "__qualname__", fn),
            seconds * 1000,
        )


async def run_db_write(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run `fn`, which writes (store.append, set_flags, expunge...): batched with other
    writes into one transaction, by the event loop's group commit when `runs_inline()`,
    else by the SQLite writer thread; on a remote PostgreSQL on the writers' pool."""
    call = functools.partial(fn, *args, **kwargs)
    if runs_inline():
        return await _loop_writer(asyncio.get_running_loop()).submit(call)
    if _is_sqlite():
        return await asyncio.wrap_future(_batch_writer().submit(call))
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(write_pool(), functools.partial(_call, call, (), {}))
