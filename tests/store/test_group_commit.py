"""The event loop's group commit (mailhost/dbpool.py _LoopWriter). On SQLite a write is
acknowledged, and its events published, only after the WAL fsync that covers it; the loop
keeps serving while that fsync runs on its thread. On PostgreSQL the COMMIT itself waits
for the server's WAL flush, so no fsync of ours is involved."""

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


def test_a_write_is_acknowledged_once_durable(alice, slow_sync):
    if dbpool._is_sqlite():
        _sqlite_acknowledges_after_the_sync(alice, *slow_sync)
    else:
        _postgresql_acknowledges_at_commit(alice, *slow_sync)


def _postgresql_acknowledges_at_commit(alice, gate, calls) -> None:
    """PostgreSQL: acknowledged when COMMIT returns; SQLite's WAL fsync is never called."""

    async def main():
        with events.subscribe(alice.id) as sub:
            raw = b"Subject: at once\r\n\r\nbody\r\n"
            appended = await asyncio.wait_for(
                dbpool.run_db_write(store.append, alice.id, "INBOX", raw), 10
            )
            assert appended.uid == 1
            assert (await sub.get(wait=5)).kind == "added"

    asyncio.run(main())
    assert calls == []


def _sqlite_acknowledges_after_the_sync(alice, gate, calls) -> None:
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
    """SQLite: a write whose fsync failed is not acknowledged (it is committed, but not
    known to be on disk). PostgreSQL never calls it: the write succeeds."""

    def broken() -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(dbpool, "_sync_wal", broken)
    monkeypatch.setattr(dbpool, "_loop_writers", {})
    write = dbpool.run_db_write(store.append, alice.id, "INBOX", b"Subject: x\r\n\r\ny\r\n")

    async def main():
        if dbpool._is_sqlite():
            with pytest.raises(OSError):
                await write
        else:
            assert (await write).uid == 1

    asyncio.run(main())
