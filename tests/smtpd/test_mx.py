"""The inbound MX (RFC 5321) with smtplib, swaks and raw bytes."""

from __future__ import annotations

import smtplib
import subprocess
import time

import pytest

from mailhost import store
from tests.smtpd.raw import Raw

RAW = b"From: Bob <bob@remote.test>\r\nTo: alice@example.test\r\nSubject: hi\r\n\r\nHello\r\n"


def inbox(account, folder: str = "INBOX") -> list[bytes]:
    box = store.lookup_mailbox(account.id, folder)
    return [
        store.read_message(account.id, box.id, uid)
        for uid in store.message_uids(account.id, box.id)
    ]


def test_ehlo_advertises_the_extensions(mx_server, alice):
    """RFC 5321 §4.1.1.1 EHLO; RFC 2920, 1870, 6152, 6531, 2034, 3207; no AUTH before TLS."""
    with smtplib.SMTP("127.0.0.1", mx_server.port, timeout=10) as c:
        code, _ = c.ehlo("client.remote.test")
        assert code == 250
        for ext in (
            "pipelining",
            "size",
            "8bitmime",
            "smtputf8",
            "enhancedstatuscodes",
            "starttls",
        ):
            assert c.has_extn(ext), ext
        assert not c.has_extn("auth")
        assert int(c.esmtp_features["size"]) > 0


def test_mail_for_a_local_user_is_stored_with_received_and_auth_results(mx_server, alice):
    """RFC 5321 §4.4: a Received field on every message; RFC 8601 Authentication-Results."""
    with smtplib.SMTP("127.0.0.1", mx_server.port, timeout=10) as c:
        assert c.sendmail("bob@remote.test", ["Alice@Example.Test"], RAW) == {}
    [stored] = inbox(alice)
    assert stored.startswith(b"Received: from ")
    assert b"by mx.example.test (Buz" in stored
    assert b"\r\nAuthentication-Results: mx.example.test;" in stored
    assert stored.endswith(RAW)


def test_unknown_user_is_refused_at_rcpt(mx_server, alice):
    """550 5.1.1 at RCPT time: no bounce later (RFC 5321 §3.3, RFC 3463)."""
    with smtplib.SMTP("127.0.0.1", mx_server.port, timeout=10) as c:
        c.ehlo("x")
        c.mail("bob@remote.test")
        code, text = c.rcpt("nobody@example.test")
    assert code == 550 and text.startswith(b"5.1.1")


@pytest.mark.parametrize(
    "rcpt",
    [
        "<victim@elsewhere.test>",
        "<victim%elsewhere.test@example.test>",
        "<elsewhere.test!victim@example.test>",
        '<"victim@elsewhere.test"@example.test>',
        "<@example.test:victim@elsewhere.test>",
        "<@example.test,@mx.example.test:alice@example.test>",
        "<victim@[127.0.0.1]>",
    ],
    ids=[
        "other-domain",
        "percent-hack",
        "bang-path",
        "quoted-local",
        "source-route",
        "source-route-to-local",
        "address-literal",
    ],
)
def test_unauthenticated_client_cannot_relay(mx_server, alice, rcpt):
    """No open relay (RFC 5321 §3.6.2): 554 5.7.1, whatever the address trick."""
    with Raw(mx_server.port) as c:
        c.reply()
        c.cmd("EHLO attacker.test")
        assert c.cmd("MAIL FROM:<a@attacker.test>").startswith("250")
        reply = c.cmd(f"RCPT TO:{rcpt}")
    assert reply.startswith("554 5.7.1"), reply


def test_size_is_checked_at_mail_and_during_data(settings, transactional_db, alice):
    """RFC 1870: SIZE= over the limit gets 552 at MAIL; data over it gets 552 at the end."""
    from smtpd.server import start_smtp

    from tests.servers import start_in_thread

    settings.BUZON_MAX_MESSAGE_SIZE = 2000
    thread = start_in_thread(start_smtp)
    try:
        with smtplib.SMTP("127.0.0.1", thread.port, timeout=10) as c:
            c.ehlo("x")
            assert c.esmtp_features["size"] == "2000"
            code, text = c.mail("bob@remote.test", ["SIZE=5000"])
            assert code == 552 and text.startswith(b"5.3.4")
            c.rset()
            big = RAW + b"x" * 3000 + b"\r\n"
            assert c.mail("bob@remote.test")[0] == 250  # no SIZE= declared
            assert c.rcpt("alice@example.test")[0] == 250
            code, text = c.data(big)
            assert code == 552 and text.startswith(b"5.3.4")
            assert c.sendmail("bob@remote.test", ["alice@example.test"], RAW) == {}
    finally:
        thread.stop()
    assert len(inbox(alice)) == 1


@pytest.mark.parametrize(
    "smuggle",
    [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r.\r\n", b"\r\n.\r"],
    ids=["LF.LF", "LF.CRLF", "CRLF.LF", "CR.CR", "CR.CRLF", "CRLF.CR"],
)
def test_smuggled_end_of_data_is_refused(mx_server, alice, smuggle):
    """Only <CRLF>.<CRLF> ends DATA (RFC 5321 §4.1.1.4); bare CR/LF refuse the message."""
    with Raw(mx_server.port) as c:
        c.reply()
        c.cmd("EHLO attacker.test")
        c.cmd("MAIL FROM:<bob@remote.test>")
        c.cmd("RCPT TO:<alice@example.test>")
        assert c.cmd("DATA").startswith("354")
        c.send(
            b"Subject: first\r\n\r\nbody" + smuggle + b"MAIL FROM:<admin@example.test>\r\n"
            b"RCPT TO:<alice@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n"
        )
        reply = c.reply()
        assert reply.startswith("550 5.5.2"), reply
        assert c.cmd("NOOP").startswith("250")  # nothing else was answered in between
    assert inbox(alice) == []


def test_dot_stuffing_is_undone(mx_server, alice):
    """RFC 5321 §4.5.2: a leading dot is doubled on the wire and removed by us."""
    with Raw(mx_server.port) as c:
        c.reply()
        c.cmd("EHLO x")
        c.cmd("MAIL FROM:<bob@remote.test>")
        c.cmd("RCPT TO:<alice@example.test>")
        c.cmd("DATA")
        assert c.cmd(b"Subject: dots\r\n\r\n..leading\r\n.").startswith("250")
    assert inbox(alice)[0].endswith(b"\r\n\r\n.leading\r\n")


def test_pipelined_transaction_gets_replies_in_order(mx_server, alice):
    """RFC 2920 §3.1: commands sent as one group are answered in order."""
    with Raw(mx_server.port) as c:
        c.reply()
        c.cmd("EHLO x")
        c.send(
            b"MAIL FROM:<bob@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
            b"RCPT TO:<ghost@example.test>\r\nDATA\r\n"
        )
        assert [c.reply()[:3] for _ in range(4)] == ["250", "250", "550", "354"]
        assert c.cmd(RAW + b".").startswith("250 2.0.0")
        c.send(b"MAIL FROM:<bob@remote.test>\r\nRCPT TO:<ghost@example.test>\r\nDATA\r\n")
        assert [c.reply()[:3] for _ in range(3)] == ["250", "550", "554"]
    assert len(inbox(alice)) == 1


def test_too_many_errors_end_the_session_with_421(settings, mx_server, alice):
    settings.BUZON_SMTP_MAX_ERRORS = 3
    with Raw(mx_server.port) as c:
        c.reply()
        c.cmd("EHLO x")
        c.cmd("MAIL FROM:<bob@remote.test>")
        c.cmd("RCPT TO:<nobody1@example.test>")
        c.cmd("RCPT TO:<nobody2@example.test>")
        assert c.cmd("RCPT TO:<nobody3@example.test>").startswith("550 5.1.1")
        assert c.reply().startswith("421 4.7.0")
        assert c.reply() == "<closed>"


def test_recipient_limit(settings, transactional_db, alice):
    """RFC 5321 §4.5.3.1.10: 452 for recipients past the limit."""
    from smtpd.server import start_smtp

    from tests.servers import start_in_thread

    settings.BUZON_SMTP_MAX_RECIPIENTS = 2
    thread = start_in_thread(start_smtp)
    try:
        with smtplib.SMTP("127.0.0.1", thread.port, timeout=10) as c:
            c.ehlo("x")
            c.mail("bob@remote.test")
            assert c.rcpt("alice@example.test")[0] == 250
            assert c.rcpt("alice+a@example.test")[0] == 250
            code, text = c.rcpt("alice+b@example.test")
            assert code == 452 and text.startswith(b"4.5.3")
    finally:
        thread.stop()


def test_connections_per_ip_are_limited(settings, transactional_db, alice):
    from smtpd.server import start_smtp

    from tests.servers import start_in_thread

    settings.BUZON_SMTP_MAX_CONNECTIONS_PER_IP = 2
    thread = start_in_thread(start_smtp)
    try:
        first, second = Raw(thread.port), Raw(thread.port)
        assert first.reply().startswith("220") and second.reply().startswith("220")
        with Raw(thread.port) as third:
            assert third.reply().startswith("421 4.7.0")
        first.close()
        time.sleep(0.2)
        with Raw(thread.port) as fourth:
            assert fourth.reply().startswith("220")
        second.close()
    finally:
        thread.stop()


def test_idle_timeout_gets_421(settings, transactional_db, alice):
    """RFC 5321 §4.5.3.2: a server timing out says 421 before closing."""
    from smtpd.server import start_smtp

    from tests.servers import start_in_thread

    settings.BUZON_SMTP_TIMEOUT = 1
    thread = start_in_thread(start_smtp)
    try:
        with Raw(thread.port) as c:
            c.reply()
            assert c.reply().startswith("421 4.4.2")
    finally:
        thread.stop()


def test_over_long_command_line_is_refused(mx_server, alice):
    with Raw(mx_server.port) as c:
        c.reply()
        c.cmd("EHLO x")
        assert c.cmd("NOOP " + "x" * 2000).startswith("500 5.5.2")
        assert c.cmd("NOOP").startswith("250 2.0.0")


def test_swaks_pipelining_starttls(mx_server, alice):
    """A real client: swaks with PIPELINING and STARTTLS."""
    out = subprocess.run(
        [
            "swaks", "--server", "127.0.0.1", "--port", str(mx_server.port),
            "--from", "bob@remote.test", "--to", "alice@example.test",
            "--helo", "client.remote.test", "--pipeline", "--tls",
            "--header", "Subject: from swaks", "--timeout", "20",
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "PIPELINING" in out.stdout
    [stored] = inbox(alice)
    assert b"Subject: from swaks" in stored
    assert b"with ESMTPS" in stored


def test_smtputf8_address(mx_server, alice):
    """RFC 6531: a UTF-8 envelope with SMTPUTF8."""
    from mailhost.directory import add_alias

    add_alias("jos\u00e9@example.test", ["alice@example.test"])
    with Raw(mx_server.port) as c:
        c.reply()
        c.cmd("EHLO x")
        assert c.cmd("MAIL FROM:<bob@remote.test> SMTPUTF8").startswith("250")
        assert c.cmd("RCPT TO:<jos\u00e9@example.test>").startswith("250")
        c.cmd("DATA")
        assert c.cmd(RAW + b".").startswith("250")
    assert b"with UTF8SMTP" in inbox(alice)[0]
