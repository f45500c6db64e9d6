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
"""

from __future__ import annotations

import asyncio
import functools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from django.conf import settings
from django.db import close_old_connections

T = TypeVar("T")
WRITE_BATCH = 64  # most calls one SQLite transaction takes
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


async def run_db_write(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run `fn`, which writes (store.append, set_flags, expunge...): on SQLite batched with
    other writes into one transaction, on PostgreSQL on the writers' pool."""
    call = functools.partial(fn, *args, **kwargs)
    if "sqlite" in settings.DATABASES["default"]["ENGINE"]:
        return await asyncio.wrap_future(_batch_writer().submit(call))
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(write_pool(), functools.partial(_call, call, (), {}))
