"""`BUZON_DB_INLINE=no`: the daemons' database work on the thread pools (what a remote
PostgreSQL server gets under `auto`), checked through a real `imapd` process, since the
rest of the suite runs with the inline path (SQLite, or PostgreSQL on 127.0.0.1)."""

from __future__ import annotations

import imaplib
import re
import signal
import time

import pytest

from tests.conftest import PASSWORD
from tests.imapd.conftest import ALICE
from tests.processes import popen_manage

pytestmark = pytest.mark.django_db(transaction=True)


def _start(**env: str):
    proc = popen_manage(
        "imapd", "--imap-port", "auto", "--imaps-port", "0",
        BUZON_ALLOW_PLAINTEXT_AUTH="true", **env,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        m = re.match(r"imap listening on 127\.0\.0\.1:(\d+)", line)
        if m:
            return proc, int(m.group(1))
        if not line:
            break
    proc.kill()
    raise AssertionError("imapd did not start")


def test_store_fetch_search_expunge_on_the_pools(alice):
    """RFC 9051 §6.3.12 APPEND, §6.4.6 STORE, §6.4.4 SEARCH, §6.4.3 EXPUNGE, with every
    read and write going through mailhost.dbpool's thread pools."""
    proc, port = _start(BUZON_DB_INLINE="no")
    try:
        imap = imaplib.IMAP4("127.0.0.1", port, timeout=10)
        imap.login(ALICE, PASSWORD)
        for i in range(5):
            typ, data = imap.append("INBOX", None, None, b"Subject: pool %d\r\n\r\nbody\r\n" % i)
            assert typ == "OK", data
        assert imap.select("INBOX") == ("OK", [b"5"])
        assert imap.store("2,4", "+FLAGS", "(\\Deleted \\Seen)")[0] == "OK"
        typ, data = imap.uid("SEARCH", "UNSEEN")
        assert (typ, data) == ("OK", [b"1 3 5"])
        typ, data = imap.fetch("3", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)] FLAGS)")
        assert typ == "OK" and data[0][1] == b"Subject: pool 2\r\n\r\n"
        typ, data = imap.expunge()
        assert (typ, data) == ("OK", [b"4", b"2"])
        assert imap.search(None, "ALL") == ("OK", [b"1 2 3"])
        imap.logout()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
