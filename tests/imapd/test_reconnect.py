"""A database connection that breaks under the IMAP server (PostgreSQL restarted, its
backends terminated) is replaced: the command that met the break gets NO [SERVERBUG]
(STYLE §4) and the session goes on; the next command reconnects and works."""

from __future__ import annotations

import pytest
from django.db import connection

from mailhost import store
from tests.imapd.rawclient import RawClient

pytestmark = pytest.mark.django_db(transaction=True)


def test_session_survives_a_database_restart(imap_server, alice):
    if connection.vendor != "postgresql":
        pytest.skip("a SQLite file has no server to lose the connection to")
    store.append(alice.id, "INBOX", b"Subject: before\r\n\r\nbody\r\n")
    client = RawClient(imap_server.port)
    client.login()
    client.command(b"s", b"SELECT INBOX")
    with connection.cursor() as cursor:  # what a PostgreSQL restart does to the server's
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    # Each connection (the event loop's, the pools') fails once, at its first use after
    # the break; the rounds after that must all succeed.
    commands = [
        b"STATUS INBOX (MESSAGES UIDNEXT)",
        b"NOOP",
        b"FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])",
        b"STORE 1 +FLAGS (\\Seen)",
        b"UID SEARCH SUBJECT before",
    ]
    rounds = []
    for r in range(3):
        rounds.append([client.command(b"r%d" % r, cmd)[-1].split(b" ", 2)[1] for cmd in commands])
    assert set(rounds[0]) <= {b"OK", b"NO"}, rounds
    assert rounds[-1] == [b"OK"] * len(commands), rounds
    store.append(alice.id, "INBOX", b"Subject: after\r\n\r\nbody\r\n")
    lines = client.command(b"n", b"NOOP")
    assert b"* 2 EXISTS\r\n" in lines and lines[-1].startswith(b"n OK"), lines
    client.close()
