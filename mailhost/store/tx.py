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


@contextmanager
def write() -> Iterator[None]:
    """A transaction that writes (use instead of transaction.atomic in the store)."""
    if connection.vendor == "sqlite" and not connection.in_atomic_block:
        with _sqlite_writer, transaction.atomic():
            yield
    else:
        with transaction.atomic():
            yield


def write_batch(calls: list[Callable[[], object]]) -> list[tuple[bool, object]]:
    """Run several writers in one SQLite transaction: group commit.

    Each call runs in its own savepoint (its `tx.write()` nests), so one that raises is
    rolled back alone and gets its exception; the others commit together, with one fsync
    instead of one each. Returns (ok, value or exception) per call, only after the commit:
    nothing is reported done before it is durable. If the commit itself fails, every call
    gets that error. Events (`publish_on_commit`) go out after the commit, as usual.
    """
    results: list[tuple[bool, object]] = []
    try:
        with _sqlite_writer, transaction.atomic():
            for call in calls:
                try:
                    with transaction.atomic():
                        results.append((True, call()))
                except Exception as e:
                    results.append((False, e))
            if connection.needs_rollback:  # a savepoint could not be rolled back
                raise transaction.TransactionManagementError("write batch rolled back")
    except Exception as e:
        return [(False, e)] * len(calls)
    return results
