"""Write transactions: SQLite writers queue on a lock in-process instead of busy-waiting.

SQLite allows one writer at a time. Its busy handler sleeps in growing steps (up to 100 ms)
while another thread holds the lock, which turns ten concurrent LMTP sessions into a p99 of
half a second. Writers in one process therefore take a Python lock first (waking exactly when
the previous commit ends); across processes SQLite's busy timeout still applies. PostgreSQL
needs none of this: row locks serialise only writers of the same mailbox.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
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
