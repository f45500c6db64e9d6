"""Write transactions: SQLite writers queue on a lock instead of busy-waiting.

SQLite allows one writer at a time. Its busy handler sleeps in growing steps (up to 100 ms)
while another thread holds the lock, which turns ten concurrent LMTP sessions into a p99 of
half a second. Writers therefore take a Python lock first (threads of one process), then an
flock on BUZON_DATA_DIR/run/write.lock (processes: `imapd --workers N` on SQLite, or the
daemons run apart), both waking exactly when the previous commit ends. A daemon's event
loop never blocks on them: its group commit tries them (`try_writer_lock`) and comes back
shortly if another process is writing. PostgreSQL needs none of this: row locks serialise
only writers of the same mailbox.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction

_sqlite_writer = threading.RLock()
_depth = 0  # nesting of _writer_lock() in the thread holding _sqlite_writer
# (pid, BUZON_DATA_DIR, fd): reopened after a fork or when the setting is another object
_lock_file: tuple[int, object, int] | None = None


def _lock_fd() -> int:
    """This process's descriptor of the write-lock file (a forked child opens its own, as
    flock locks belong to the open file, which parent and child would otherwise share)."""
    global _lock_file
    data_dir = settings.BUZON_DATA_DIR
    if _lock_file is None or _lock_file[0] != os.getpid() or _lock_file[1] is not data_dir:
        if _lock_file is not None and _lock_file[0] == os.getpid() and _depth == 0:
            os.close(_lock_file[2])  # another data dir (tests): not the parent's descriptor
        path = Path(data_dir) / "run" / "write.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        _lock_file = (os.getpid(), data_dir, os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    return _lock_file[2]


def _acquire(blocking: bool) -> bool:
    global _depth
    if not _sqlite_writer.acquire(blocking=blocking):
        return False
    if _depth == 0:
        try:
            fcntl.flock(_lock_fd(), fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _sqlite_writer.release()
            return False
        except BaseException:
            _sqlite_writer.release()
            raise
    _depth += 1
    return True


def _release() -> None:
    global _depth
    _depth -= 1
    try:
        if _depth == 0:
            fcntl.flock(_lock_fd(), fcntl.LOCK_UN)
    finally:
        _sqlite_writer.release()


@contextmanager
def _writer_lock() -> Iterator[None]:
    """SQLite's one writer: this thread, among the threads and processes of this server."""
    _acquire(blocking=True)
    try:
        yield
    finally:
        _release()


def try_writer_lock() -> bool:
    """Take the SQLite writer lock if nobody holds it (then `release_writer_lock()`)."""
    return _acquire(blocking=False)


def release_writer_lock() -> None:
    _release()


_batch = threading.local()  # set while write_batch runs calls in one transaction


@contextmanager
def write() -> Iterator[None]:
    """A transaction that writes (use instead of transaction.atomic in the store)."""
    if connection.vendor == "sqlite" and not connection.in_atomic_block:
        with _writer_lock(), transaction.atomic():
            yield
    elif getattr(_batch, "active", False):
        # Inside write_batch: no savepoint (two statements each); a failure rolls the whole
        # batch back and write_batch runs its calls again one transaction each.
        with transaction.atomic(savepoint=False):
            yield
    else:
        with transaction.atomic():
            yield


def write_batch(calls: list[Callable[[], object]]) -> list[tuple[bool, object]]:
    """Run several writers in one SQLite transaction: group commit.

    The calls run one after another in one transaction, committed with one fsync instead of
    one each. If any raises, that transaction is rolled back and each call runs again alone,
    in a transaction of its own, so one failure costs the others only time. Returns (ok,
    value or exception) per call, only after its commit: nothing is reported done before
    it is durable. If the commit fails, every call gets that error. Events
    (`publish_on_commit`) go out after the commit, as usual.
    """
    with _writer_lock():
        if len(calls) > 1:
            ran = False
            _batch.active = True
            try:
                with transaction.atomic():
                    results: list[tuple[bool, object]] = [(True, call()) for call in calls]
                    ran = True
                    if connection.needs_rollback:  # a call swallowed a database error
                        ran = False
                        raise transaction.TransactionManagementError("batch rolled back")
                return results
            except Exception as e:
                if ran:  # the commit (or an on-commit hook) failed: do not run them twice
                    return [(False, e)] * len(calls)
            finally:
                _batch.active = False
        out: list[tuple[bool, object]] = []
        for call in calls:  # each store function opens its own transaction
            try:
                out.append((True, call()))
            except Exception as e:
                out.append((False, e))
        return out
