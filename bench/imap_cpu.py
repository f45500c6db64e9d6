"""CPU per IMAP command, in process and without the network: the steadier figure when the
machine's speed varies between runs (bench/README.md).

    .venv/bin/python bench/imap_cpu.py [--count 2000]

One session (imapd.imap.session.Session) over a connection object that only collects the
output, one account with 200 messages of 2-8 KiB in a throw-away SQLite data dir (or
DATABASE_URL); each command is answered `--count` times (at most 20,000) and the process
CPU time per command is printed. Includes parsing, the store's reads and writes, and
formatting; excludes sockets and the event loop's I/O.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import database_label, fresh_account, message, setup_django, table  # noqa: E402

COMMANDS = [
    ("NOOP", b"t NOOP"),
    ("UID FETCH 1:* (FLAGS)", b"t UID FETCH 1:* (FLAGS)"),
    (
        "FETCH 20 headers",
        b"t FETCH 181:200 (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT "
        b"DATE MESSAGE-ID)])",
    ),
    ("FETCH BODY.PEEK[]", b"t FETCH 17 (BODY.PEEK[])"),
    ("STORE +/-FLAGS", None),
    ("UID SEARCH UNSEEN", b"t UID SEARCH UNSEEN"),
    ("UID SEARCH SUBJECT", b"t UID SEARCH SUBJECT message"),
    ("SELECT INBOX", b"t SELECT INBOX"),
    ("APPEND (\\Deleted) + EXPUNGE", "append"),
]


class _Collect:
    """Stands in for imapd.net.Connection: keeps what the session writes."""

    tls = closed = compressed = False
    peer_ip, is_loopback, local_port = "127.0.0.1", True, 1143

    def __init__(self) -> None:
        self.out: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.out.append(data)

    async def drain(self) -> None:
        self.out.clear()


def _backend_cpu() -> float:
    """CPU seconds of this connection's PostgreSQL backend (on this machine), else 0."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return 0.0
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _count_statements(connection, tally) -> None:
    """Call `tally` for every statement the database runs for this connection, BEGIN and
    COMMIT included: SQLite's trace callback; on PostgreSQL, every wait for the server's
    answer (one a round trip)."""
    connection.ensure_connection()
    if connection.vendor == "sqlite":
        connection.connection.set_trace_callback(tally)
        return
    raw = connection.connection
    wait = raw.wait

    def counted_wait(*args, **kwargs):
        tally()
        return wait(*args, **kwargs)

    raw.wait = counted_wait


async def measure(count: int) -> list[list]:
    from django.db import connection

    import imapd.imap.server  # noqa: F401 - registers the command handlers
    from imapd.imap.session import Session
    from mailhost.dbpool import call_outside_loop

    statements = 0

    def tally(*args) -> None:
        nonlocal statements
        statements += 1

    call_outside_loop(lambda: _count_statements(connection, tally))

    session = Session(_Collect())
    await session.handle(b't LOGIN cpu@bench.test "pw"\r\n')
    await session.handle(b"t SELECT INBOX\r\n")
    rows = []
    for name, command in COMMANDS:

        def data(i: int, command=command) -> list[bytes]:
            if command is None:  # alternate, so every STORE changes a flag
                sign = b"+-"[i % 2 : i % 2 + 1]
                return [b"t STORE %d %sFLAGS (\\Seen)\r\n" % (i % 200 + 1, sign)]
            if command == "append":  # the mailbox stays at 200 messages
                raw = message(1000 + i, 4096)
                return [
                    b"t APPEND INBOX (\\Deleted) {%d+}\r\n%s\r\n" % (len(raw), raw),
                    b"t EXPUNGE\r\n",
                ]
            return [command + b"\r\n"]

        for i in range(50):  # warm the caches, as a running server has them
            for one in data(i):
                await session.handle(one)
                await session.drain()
        started, db_started, statements = time.process_time(), call_outside_loop(_backend_cpu), 0
        for i in range(count):
            for one in data(i):
                await session.handle(one)
                await session.drain()
        cpu = (time.process_time() - started) / count * 1e6
        db_cpu = (call_outside_loop(_backend_cpu) - db_started) / count * 1e6
        rows.append([name, cpu, db_cpu, statements / count])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=2000)
    args = ap.parse_args()
    os.environ.setdefault("BUZON_ALLOW_PLAINTEXT_AUTH", "true")
    os.environ.setdefault("BUZON_IMAP_COMMANDS_PER_SECOND", "0")
    setup_django()
    from mailhost import store

    account = fresh_account("cpu@bench.test", "pw")
    items = [store.AppendItem(message(i, 2048 + (i % 7) * 1024)) for i in range(200)]
    store.append_many(account.id, "INBOX", items)
    rows = asyncio.run(measure(min(args.count, 20_000)))
    print(
        table(
            f"IMAP CPU per command, in process, {database_label()}",
            ["command", "µs", "DB server µs", "statements"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
