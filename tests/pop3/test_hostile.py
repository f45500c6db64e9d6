"""Bad input over a raw socket: each gets -ERR and the session goes on (ARCHITECTURE)."""

import socket

import pytest

from imapd.pop3.server import start_pop3
from tests.conftest import PASSWORD
from tests.servers import start_in_thread

from .conftest import ALICE, make_message, put

pytestmark = pytest.mark.django_db(transaction=True)


def test_unknown_and_malformed_commands_get_err(raw):
    c = raw()
    for line in [
        b"HELO there",
        b"",
        b"   ",
        b"\x00\x01\x02",
        b"\xff\xfe garbage",
        b"RETR",
        b"LIST x",
        b"TOP 1",
        b"USER",
        b"QUIT now",
        b"AUTH PLAIN a b c",
        b"NOOP",  # valid, but not before login
    ]:
        assert c.cmd(line).startswith(b"-ERR"), line
    assert c.cmd(b"CAPA").startswith(b"+OK")
    assert b"TOP\r\n" in c.multiline()


def test_overlong_line_gets_err_and_the_session_goes_on(raw):
    """RFC 2449 §4: command lines are at most 255 octets."""
    c = raw()
    assert c.cmd(b"NOOP " + b"x" * 254).startswith(b"-ERR Line too long")
    assert c.cmd(b"USER " + b"a" * 100_000).startswith(b"-ERR Line too long")
    assert c.cmd(b"CAPA").startswith(b"+OK")
    c.multiline()
    assert c.cmd(b"QUIT") == b"+OK Bye\r\n"


def test_a_line_of_exactly_255_octets_is_a_command(raw):
    c = raw()
    line = b"USER " + b"a" * (255 - 7)
    assert len(line + b"\r\n") == 255
    reply = c.cmd(line)
    assert reply.startswith(b"-ERR [AUTH]")  # parsed (and refused: no TLS), not "too long"


def test_bad_numbers_after_login(raw, plaintext_ok, alice):
    put(alice, make_message(1))
    c = raw()
    assert c.cmd(f"USER {ALICE}".encode()).startswith(b"+OK")
    assert c.cmd(f"PASS {PASSWORD}".encode()).startswith(b"+OK")
    for line in [
        b"RETR 0",
        b"RETR 2",
        b"RETR -1",
        b"RETR 1.0",
        b"RETR 4294967297",
        b"RETR 99999999999999999999",
        b"TOP 1 x",
        b"TOP 2 1",
        b"DELE 2",
        b"LIST 0",
        b"UIDL 2",
        b"STLS",
        b"PASS again",
        b"AUTH PLAIN",
    ]:
        assert c.cmd(line).startswith(b"-ERR"), line
    assert c.cmd(b"STAT").startswith(b"+OK 1 ")
    assert c.cmd(b"DELE 1").startswith(b"+OK")
    assert c.cmd(b"RETR 1").startswith(b"-ERR")
    assert c.cmd(b"TOP 1 0").startswith(b"-ERR")
    assert c.cmd(b"QUIT").startswith(b"+OK")


def test_bare_lf_line_ends_are_accepted(raw):
    c = raw()
    c.send(b"CAPA\n")
    assert c.line().startswith(b"+OK")
    c.multiline()


def test_plaintext_pipelined_after_stls_is_discarded(raw, client_context):
    """RFC 2595 §4 / RFC 3207-style injection: bytes sent with STLS are not executed."""
    c = raw()
    c.send(b"STLS\r\nCAPA\r\n")
    assert c.line().startswith(b"+OK Begin TLS")
    tls_sock = client_context.wrap_socket(c.sock, server_hostname="127.0.0.1")
    tls_sock.settimeout(5)
    tls_sock.sendall(b"NOOP\r\n")
    reply = tls_sock.recv(1000)
    # Only the NOOP is answered: the CAPA sent in plaintext was dropped, not run.
    assert reply.startswith(b"-ERR NOOP is not allowed before login")
    tls_sock.close()


def test_connection_cap_per_ip(pop3_server, settings):
    settings.BUZON_POP3_CONNECTIONS_PER_IP = 2

    capped = start_in_thread(start_pop3)
    try:
        socks = [socket.create_connection(("127.0.0.1", capped.port), timeout=5) for _ in range(3)]
        greetings = [s.makefile("rb").readline() for s in socks]
        assert [g[:3] for g in greetings[:2]] == [b"+OK", b"+OK"]
        assert greetings[2].startswith(b"-ERR [SYS/TEMP] Too many connections")
        for s in socks:
            s.close()
    finally:
        capped.stop()


def test_a_flood_of_pipelined_commands_is_answered_in_order(raw):
    """RFC 2449 §6.6: replies in order; a client that writes without reading only fills
    its socket buffers (the server waits on drain), then reads every reply."""
    c = raw()
    c.send(b"CAPA\r\nBOGUS\r\n" * 3000 + b"QUIT\r\n")
    for _ in range(3000):
        assert c.line().startswith(b"+OK Capability")
        c.multiline()
        assert c.line().startswith(b"-ERR Unknown command")
    assert c.line() == b"+OK Bye\r\n"
