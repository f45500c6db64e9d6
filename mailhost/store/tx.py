"""Write transactions: SQLite writers queue on a lock in-process instead of busy-waiting.

SQLite allows one writer at a time. Its busy handler sleeps in growing steps (up to 100 ms)
while another thread holds the lock, which turns ten concurrent LMTP sessions into a p99 of
half a second. Writers in one process therefore take a Python lock first (waking exactly when
the previous commit ends); across processes SQLite's busy timeout still applies. PostgreSQL
needs none of this: row locks serialise only writers of the same mailbox.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.db import connection, transaction

_sqlite_writer = threading.RLock()


_batch = threading.local()  # set while write_batch runs calls in one transaction


@contextmanager
def write() -> Iterator[None]:
    """A transaction that writes (use instead of transaction.atomic in the store)."""
    if connection.vendor == "sqlite" and not connection.in_atomic_block:
        with _sqlite_writer, transaction.atomic():
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
    with _sqlite_writer:
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
