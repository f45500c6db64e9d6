"""Malformed and hostile input through a raw socket: BAD (or BYE) and the server goes on."""

from __future__ import annotations

import time

import pytest

from mailhost import store
from tests.imapd.rawclient import RawClient

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def raw(imap_server, alice):
    c = RawClient(imap_server.port)
    c.login()
    yield c
    c.close()


def alive(c: RawClient) -> bool:
    return c.command(b"alive", b"NOOP")[-1].startswith(b"alive OK")


def test_garbage_gets_bad_and_session_goes_on(raw):
    """RFC 9051 §7.1.5: BAD for syntax errors, tagged when the tag could be read."""
    for junk in (b"", b"*", b"+ x", b"a", b"a FETCH", b"a\x00b NOOP", b"\xff\xfe NOOP",
                 b'a LOGIN "unterminated', b"a SELECT {999999999999999}"):  # fmt: skip
        raw.send(junk + b"\r\n")
        line = raw.line()
        assert b" BAD " in line, (junk, line)
    assert alive(raw)


def test_invalid_sequence_sets(raw, alice):
    """RFC 9051 §9: 0 and numbers beyond 2^32-1 are not sequence numbers."""
    store.append(alice.id, "INBOX", b"Subject: x\r\n\r\ny\r\n")
    raw.command(b"s", b"SELECT INBOX")
    for seqset in (b"0", b"1:0", b"4294967296", b"1,,2", b"1:*:2", b"-1"):
        lines = raw.command(b"f", b"FETCH " + seqset + b" FLAGS")
        assert lines[-1].startswith(b"f BAD"), (seqset, lines)
    assert raw.command(b"u", b"UID FETCH 4294967295 FLAGS")[-1].startswith(b"u OK")
    assert alive(raw)


def test_line_too_long(raw, settings):
    """Lines are bounded (BUZON_IMAP_MAX_LINE); the rest of the line is discarded."""
    settings.BUZON_IMAP_MAX_LINE = 1000
    raw.send(b"a NOOP " + b"x" * 5000 + b"\r\n")
    assert b"BAD" in raw.line()
    assert alive(raw)


def test_sync_literal_over_limit_is_refused_without_continuation(raw, settings):
    """RFC 7889: APPEND beyond APPENDLIMIT gets NO [TOOBIG] before any "+"."""
    settings.BUZON_MAX_MESSAGE_SIZE = 1000
    raw.send(b"a APPEND INBOX {5000}\r\n")
    line = raw.line()
    assert line.startswith(b"a NO [TOOBIG]")
    raw.send(b"b CREATE {5000}\r\n")
    assert raw.line().startswith(b"b BAD")
    assert alive(raw)


def test_non_sync_literal_over_limit_ends_the_session(raw, settings):
    """RFC 7888 §4: the client sends a non-synchronising literal regardless; we say BYE."""
    settings.BUZON_MAX_MESSAGE_SIZE = 1000
    raw.send(b"a APPEND INBOX {5000+}\r\n" + b"x" * 100)
    assert raw.line().startswith(b"* BYE")


def test_deep_nesting_and_too_many_keys(raw, alice):
    """Nesting depth and key count in SEARCH are bounded (ARCHITECTURE safety rules)."""
    raw.command(b"s", b"SELECT INBOX")
    deep = b"(" * 500 + b"ALL" + b")" * 500
    assert raw.command(b"a", b"SEARCH " + deep)[-1].startswith(b"a BAD")
    nots = b"NOT " * 500 + b"ALL"
    assert raw.command(b"b", b"SEARCH " + nots)[-1].startswith(b"b BAD")
    many = b" ".join([b"SEEN"] * 5000)
    assert raw.command(b"c", b"SEARCH " + many)[-1].startswith(b"c BAD")
    flags = b"(" * 100 + b")" * 100
    assert raw.command(b"d", b"STORE 1 FLAGS " + flags)[-1].startswith(b"d BAD")
    assert alive(raw)


def test_unexpected_error_is_serverbug_and_session_goes_on(raw, monkeypatch):
    """STYLE §4: an unexpected exception is NO [SERVERBUG], logged, and the session goes on."""

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(store, "list_mailboxes", boom)
    lines = raw.command(b"a", b'LIST "" "*"')
    assert lines[-1].startswith(b"a NO [SERVERBUG]")
    assert alive(raw)


def test_commands_per_second_are_limited(imap_server, alice, settings):
    """A client flooding commands is slowed to BUZON_IMAP_COMMANDS_PER_SECOND."""
    settings.BUZON_IMAP_COMMANDS_PER_SECOND = 50
    c = RawClient(imap_server.port)
    started = time.monotonic()
    c.send(b"".join(b"n%d NOOP\r\n" % i for i in range(200)))
    c.until_tagged(b"n199")
    assert time.monotonic() - started >= 1.5  # 100 burst, then 50/s
    c.close()


def test_connections_per_ip_are_capped(imap_server, alice, settings):
    """At most BUZON_IMAP_CONNECTIONS_PER_IP sessions per address; the next one gets BYE."""
    settings.BUZON_IMAP_CONNECTIONS_PER_IP = 2
    from imapd.imap.server import start_imap
    from tests.servers import start_in_thread

    server = start_in_thread(start_imap)
    try:
        first, second = RawClient(server.port), RawClient(server.port)
        third = RawClient(server.port)
        assert third.greeting.startswith(b"* BYE")
        assert first.greeting.startswith(b"* OK") and second.greeting.startswith(b"* OK")
        for c in (first, second, third):
            c.close()
    finally:
        server.stop()


def test_starttls_discards_pipelined_plaintext(imap_server, alice):
    """RFC 9051 §6.2.1 / RFC 3207 §4.2: commands pipelined after STARTTLS are discarded."""
    c = RawClient(imap_server.port)
    c.send(b"a STARTTLS\r\nb LOGIN alice@example.test x\r\n")
    assert c.line().startswith(b"a OK")
    # The server is now waiting for a TLS ClientHello; "b" must never be answered.
    c.sock.settimeout(0.5)
    try:
        data = c.sock.recv(100)
    except TimeoutError:
        data = b""
    assert b"b " not in data
    c.close()


def test_authenticate_cancel_and_bad_base64(imap_server, alice):
    """RFC 9051 §6.2.2: "*" cancels AUTHENTICATE (BAD); malformed base64 is BAD."""
    c = RawClient(imap_server.port)
    c.send(b"a AUTHENTICATE PLAIN\r\n")
    assert c.line().startswith(b"+")
    c.send(b"*\r\n")
    assert c.line().startswith(b"a BAD")
    assert c.command(b"b", b"AUTHENTICATE PLAIN !!!")[-1].startswith(b"b BAD")
    assert c.command(b"c", b"AUTHENTICATE CRAM-MD5")[-1].startswith(b"c NO")
    c.close()


def test_idle_with_garbage_instead_of_done(raw):
    """RFC 2177 §3: anything but DONE ends IDLE with BAD."""
    raw.command(b"s", b"SELECT INBOX")
    raw.send(b"i IDLE\r\n")
    assert raw.line().startswith(b"+ ")
    raw.send(b"NOT-DONE\r\n")
    assert raw.until_tagged(b"i")[-1].startswith(b"i BAD")
    assert alive(raw)


@pytest.mark.parametrize("login", [False, True])
def test_idle_client_is_logged_out(imap_server, alice, settings, login):
    """RFC 9051 §5.4: the autologout timer (at least 30 minutes when authenticated; shorter
    here) ends a silent session with an untagged BYE, before and after login; a session
    that keeps talking is not logged out."""
    settings.BUZON_IMAP_LOGIN_TIMEOUT = 1
    settings.BUZON_IMAP_TIMEOUT = 1
    client = RawClient(imap_server.port)
    if login:
        client.login()
        client.command(b"s", b"SELECT INBOX")
    for i in range(4):  # 1.2 s of commands, none more than 0.3 s apart
        time.sleep(0.3)
        assert client.command(b"n%d" % i, b"NOOP")[-1].startswith(b"n%d OK" % i)
    started = time.monotonic()
    assert client.line().startswith(b"* BYE Autologout")
    assert 0.5 < time.monotonic() - started < 5
    assert client.line() == b""  # and the connection is closed
    client.close()
