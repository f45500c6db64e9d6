"""Server trouble: store errors map to [SYS/TEMP], bugs to a logged -ERR, idleness to an
autologout; in every case the session (or at least the server) goes on and nothing that
was only marked gets deleted."""

import poplib
import socket

import pytest
from django.db import OperationalError

from imapd.pop3 import maildrop, session
from mailhost import leases
from tests.conftest import PASSWORD

from .conftest import ALICE, inbox_uids, login, make_message, put

pytestmark = pytest.mark.django_db(transaction=True)


def test_database_trouble_at_login_is_sys_temp_and_frees_the_lock(
    pop3_server, plaintext_ok, alice, monkeypatch
):
    def broken(account_id):
        raise OperationalError("database is locked")

    monkeypatch.setattr(maildrop, "load", broken)
    client = poplib.POP3("127.0.0.1", pop3_server.port, timeout=10)
    client.user(ALICE)
    with pytest.raises(poplib.error_proto, match=r"\[SYS/TEMP\]"):
        client.pass_(PASSWORD)
    monkeypatch.undo()
    client.user(ALICE)  # the session went on, and the lock was released
    assert client.pass_(PASSWORD).startswith(b"+OK")
    client.quit()


def test_an_unexpected_error_is_logged_answered_and_the_session_goes_on(
    pop3_server, plaintext_ok, alice, monkeypatch, caplog
):
    put(alice, make_message(1))

    async def bug(self, cmd):
        raise RuntimeError("boom")

    monkeypatch.setitem(session.HANDLERS, session.Noop, bug)
    client = login(pop3_server.port)
    with pytest.raises(poplib.error_proto, match=r"\[SYS/TEMP\]"):
        client.noop()
    assert client.stat()[0] == 1
    client.quit()
    assert "POP3 NOOP from 127.0.0.1 failed" in caplog.text
    assert len(session.unhandled_errors) == 1
    session.unhandled_errors.clear()  # expected here; the fixture checks for others


def test_a_failing_expunge_at_quit_says_so(pop3_server, plaintext_ok, alice, monkeypatch):
    """RFC 1939 §6: QUIT answers -ERR when marked messages could not be removed."""
    from mailhost import store

    uids = put(alice, make_message(1))

    def broken(*args, **kwargs):
        raise OperationalError("disk I/O error")

    client = login(pop3_server.port)
    client.dele(1)
    monkeypatch.setattr(store, "expunge", broken)
    with pytest.raises(poplib.error_proto, match=r"\[SYS/TEMP\] Deleted messages were not"):
        client.quit()
    monkeypatch.undo()
    assert inbox_uids(alice) == uids
    login(pop3_server.port).quit()  # the lock was released


def test_idle_session_is_logged_out_and_deletes_nothing(pop3_server, settings, alice):
    """RFC 1939 §3: the autologout timer closes the session without the UPDATE state."""
    settings.BUZON_ALLOW_PLAINTEXT_AUTH = True
    settings.BUZON_POP3_IDLE_TIMEOUT = 1
    uids = put(alice, make_message(1))
    sock = socket.create_connection(("127.0.0.1", pop3_server.port), timeout=10)
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(f"USER {ALICE}\r\nPASS {PASSWORD}\r\nDELE 1\r\n".encode())
    assert [f.readline()[:3] for _ in range(3)] == [b"+OK"] * 3
    assert f.readline().startswith(b"-ERR Autologout")
    assert f.readline() == b""  # closed
    f.close()
    sock.close()
    assert inbox_uids(alice) == uids


def test_a_lost_lock_deletes_nothing_at_quit(pop3_server, plaintext_ok, alice):
    """If another session took the lease (this one's process stalled past its expiry),
    QUIT must not apply a stale snapshot's deletions."""
    uids = put(alice, make_message(1))
    client = login(pop3_server.port)
    client.dele(1)
    from mailhost.models import Lease

    Lease.objects.all().delete()  # expired and cleaned up...
    assert leases.acquire(f"pop3:maildrop:{alice.id}", "someone-else", 60)  # ...and taken
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\].*nothing was deleted"):
        client.quit()
    assert inbox_uids(alice) == uids
