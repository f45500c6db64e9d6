"""LMTP (RFC 2033) with smtplib.LMTP: one reply per recipient after DATA."""

import smtplib

from mailhost import store
from mailhost.models import Account
from tests.conftest import corpus

RAW = b"From: bob@example.org\r\nTo: alice@example.test\r\nSubject: lmtp\r\n\r\nHello\r\n"


def test_lmtp_delivers_and_answers_per_recipient(lmtp_server, alice, carol):
    """RFC 2033 §4.2: after DATA, one reply for each successful RCPT, in order."""
    Account.objects.filter(id=carol.id).update(quota_bytes=5)
    with smtplib.LMTP("127.0.0.1", lmtp_server.port, timeout=10) as client:
        client.ehlo("mta.example.org")  # smtplib.LMTP sends LHLO
        assert client.mail("bob@example.org")[0] == 250
        assert client.rcpt("alice@example.test")[0] == 250
        assert client.rcpt("carol@example.test")[0] == 250
        assert client.rcpt("nobody@example.test")[0] == 550
        client.putcmd("data")
        assert client.getreply()[0] == 354
        client.send(RAW + b".\r\n")
        first = client.getreply()
        second = client.getreply()
    assert first[0] == 250
    assert second[0] == 452 and b"4.2.2" in second[1]
    box = store.lookup_mailbox(alice.id, "INBOX")
    assert store.read_message(alice.id, box.id, 1) == RAW


def test_lmtp_sendmail_reports_refused_recipients(lmtp_server, alice):
    with smtplib.LMTP("127.0.0.1", lmtp_server.port, timeout=10) as client:
        refused = client.sendmail(
            "bob@example.org", ["alice@example.test", "ghost@example.test"], RAW
        )
    assert list(refused) == ["ghost@example.test"]


def test_lmtp_refuses_helo_and_keeps_serving(lmtp_server, alice):
    with smtplib.LMTP("127.0.0.1", lmtp_server.port, timeout=10) as client:
        assert client.helo("x")[0] == 500  # LMTP has LHLO only (RFC 2033 §4.1)
        assert client.docmd("BOGUS")[0] == 500
        client.ehlo("ok")
        raw = corpus("cpython/msg_02.txt")
        assert client.sendmail("b@example.org", ["alice@example.test"], raw) == {}


def test_lmtp_stores_a_corpus_message_byte_exact(lmtp_server, alice):
    raw = corpus("crispin-torture/torture-test.eml")
    with smtplib.LMTP("127.0.0.1", lmtp_server.port, timeout=30) as client:
        client.sendmail("b@example.org", ["alice@example.test"], raw)
    box = store.lookup_mailbox(alice.id, "INBOX")
    stored = store.read_message(alice.id, box.id, 1)
    # smtplib dot-stuffs and normalises line endings to CRLF; the store keeps what arrived.
    assert stored == raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
