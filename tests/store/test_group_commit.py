"""The event loop's group commit (mailhost/dbpool.py _LoopWriter) on SQLite: a write is
acknowledged, and its events published, only after the WAL fsync that covers it; the loop
keeps serving while that fsync runs on its thread."""

from __future__ import annotations

import asyncio
import threading

import pytest

from mailhost import dbpool, store
from mailhost.store import events

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def slow_sync(monkeypatch):
    """_sync_wal blocks until the test lets it go; counts its calls."""
    if not dbpool._is_sqlite():
        pytest.skip("only SQLite's WAL is synced by the group commit")
    gate = threading.Event()
    calls = []
    real = dbpool._sync_wal

    def sync() -> None:
        calls.append(threading.current_thread().name)
        assert gate.wait(10)
        real()

    monkeypatch.setattr(dbpool, "_sync_wal", sync)
    monkeypatch.setattr(dbpool, "_loop_writers", {})
    return gate, calls


def test_acknowledged_only_after_the_sync(alice, slow_sync):
    gate, calls = slow_sync
    box = store.lookup_mailbox(alice.id, "INBOX").id
    raw = b"Subject: durable\r\n\r\nbody\r\n"

    async def main():
        with events.subscribe(alice.id) as sub:
            first = asyncio.ensure_future(dbpool.run_db_write(store.append, alice.id, "INBOX", raw))
            for _ in range(50):
                await asyncio.sleep(0.01)
                if calls:
                    break
            assert calls and calls[0].startswith("wal-sync"), "fsync off the loop's thread"
            # Committed, not yet durable: not acknowledged, no event, the loop still serves
            # reads and commits the next write (which waits for the next fsync).
            assert not first.done()
            assert sub.drain() == []
            uids = await dbpool.run_db_short(store.message_uids, alice.id, box)
            assert uids == [1]
            second = asyncio.ensure_future(
                dbpool.run_db_write(store.append, alice.id, "INBOX", raw + b"2")
            )
            await asyncio.sleep(0.05)
            assert not second.done() and len(calls) == 1
            gate.set()
            one, two = await asyncio.wait_for(asyncio.gather(first, second), 10)
            assert (one.uid, two.uid) == (1, 2)
            assert len(calls) == 2  # the second batch had its own fsync
            got = [await sub.get(wait=5), await sub.get(wait=5)]
            assert [e.kind for e in got] == ["added", "added"]

    asyncio.run(main())


def test_a_failed_sync_fails_the_writes(alice, monkeypatch):
    if not dbpool._is_sqlite():
        pytest.skip("only SQLite's WAL is synced by the group commit")

    def broken() -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(dbpool, "_sync_wal", broken)
    monkeypatch.setattr(dbpool, "_loop_writers", {})

    async def main():
        with pytest.raises(OSError):
            await dbpool.run_db_write(store.append, alice.id, "INBOX", b"Subject: x\r\n\r\ny\r\n")

    asyncio.run(main())
