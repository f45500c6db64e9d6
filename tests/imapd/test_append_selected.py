"""APPEND to the selected mailbox: the session learns of its own message from the APPEND
itself, and claims \\Recent in the APPEND's own transaction (RFC 3501 §2.3.2: a message is
\\Recent in one session only, the first told of it; §6.3.11: the normal new-message actions
SHOULD occur when the target is selected). RFC 9051 drops \\Recent."""

from __future__ import annotations

import pytest

from mailhost import store
from tests.imapd.rawclient import RawClient

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGE = b"Subject: mine\r\n\r\nbody\r\n"


@pytest.fixture
def store_calls(monkeypatch):
    calls = []
    for name in ("changes_since", "claim_recent"):
        real = getattr(store, name)

        def counted(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(store, name, counted)
    return calls


def _append(client: RawClient, tag: bytes, flags: bytes = b"") -> list[bytes]:
    lines = client.command(tag, b"APPEND INBOX %s{%d+}\r\n%s" % (flags, len(MESSAGE), MESSAGE))
    assert lines[-1].startswith(tag + b" OK [APPENDUID"), lines
    return lines


def test_own_append_is_recent_here_without_a_claim(imap_server, alice, store_calls):
    store.append(alice.id, "INBOX", b"Subject: old\r\n\r\nbody\r\n")
    a, b = RawClient(imap_server.port), RawClient(imap_server.port)
    for client in (a, b):
        client.login()
    assert b"* 1 RECENT" in b"".join(a.command(b"s", b"SELECT INBOX"))
    assert b"* 0 RECENT" in b"".join(b.command(b"s", b"SELECT INBOX"))
    store_calls.clear()
    lines = _append(a, b"a1", b"(\\Flagged) ")
    assert b"* 2 EXISTS\r\n" in lines and b"* 2 RECENT\r\n" in lines, lines
    assert store_calls == [], "no changes_since, no separate \\Recent claim"
    flags = b"".join(a.command(b"f", b"FETCH 2 (FLAGS)"))
    assert b"\\Recent" in flags and b"\\Flagged" in flags
    # The other session sees the message, not as \Recent: the APPEND claimed it.
    lines = b.command(b"n", b"NOOP")
    assert b"* 2 EXISTS\r\n" in lines
    assert b"\\Recent" not in b"".join(b.command(b"f", b"FETCH 2 (FLAGS)"))
    a.close()
    b.close()


def test_unclaimed_messages_before_it_are_claimed_together(imap_server, alice, store_calls):
    a = RawClient(imap_server.port)
    a.login()
    a.command(b"s", b"SELECT INBOX")
    store.append(alice.id, "INBOX", b"Subject: delivered\r\n\r\nbody\r\n")  # not yet claimed
    store_calls.clear()
    lines = _append(a, b"a1")
    assert b"* 2 EXISTS\r\n" in lines and b"* 2 RECENT\r\n" in lines, lines
    assert store_calls == ["changes_since", "claim_recent"]
    flags = a.command(b"f", b"FETCH 1:2 (FLAGS)")
    assert all(b"\\Recent" in line for line in flags[:2]), flags
    a.close()


def test_append_after_a_change_elsewhere_still_reports_both(imap_server, alice, store_calls):
    store.append(alice.id, "INBOX", b"Subject: old\r\n\r\nbody\r\n")
    a, b = RawClient(imap_server.port), RawClient(imap_server.port)
    for client in (a, b):
        client.login()
        client.command(b"s", b"SELECT INBOX")
    b.command(b"b1", b"STORE 1 +FLAGS.SILENT (\\Seen)")  # a has not been told yet
    store_calls.clear()
    lines = b"".join(_append(a, b"a1"))
    assert b"* 1 FETCH (UID 1 FLAGS (\\Seen" in lines and b"* 2 EXISTS" in lines, lines
    assert store_calls == ["changes_since"]  # the gap is asked for; \Recent was claimed
    assert b"\\Recent" in b"".join(a.command(b"f", b"FETCH 2 (FLAGS)"))
    a.close()
    b.close()


def test_rev2_and_examine_claim_nothing(imap_server, alice, store_calls):
    a, b = RawClient(imap_server.port), RawClient(imap_server.port)
    for client in (a, b):
        client.login()
    a.command(b"e", b"ENABLE IMAP4rev2")
    a.command(b"s", b"SELECT INBOX")
    b.command(b"s", b"EXAMINE INBOX")
    store_calls.clear()
    lines = _append(a, b"a1")
    assert b"* 1 EXISTS\r\n" in lines and b"RECENT" not in b"".join(lines)
    assert store_calls == []
    lines = _append(b, b"b1")
    assert b"* 2 EXISTS\r\n" in lines
    assert b"\\Recent" not in b"".join(b.command(b"f", b"FETCH 1:2 (FLAGS)"))
    # Nobody claimed them: the next rev1 SELECT gets both as \Recent.
    c = RawClient(imap_server.port)
    c.login()
    assert b"* 2 RECENT" in b"".join(c.command(b"s", b"SELECT INBOX"))
    for client in (a, b, c):
        client.close()
