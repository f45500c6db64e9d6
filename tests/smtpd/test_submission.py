"""Submission (RFC 6409) on 587 with STARTTLS and 465 with implicit TLS (RFC 8314)."""

from __future__ import annotations

import smtplib
import subprocess

import pytest

from mailhost import jobs
from mailhost.models import QueuedMessage
from tests.conftest import PASSWORD
from tests.smtpd.raw import Raw
from tests.smtpd.test_mx import inbox


def message(sender: str = "alice@example.test", to: str = "carol@example.test") -> bytes:
    return (
        f"From: Alice <{sender}>\r\nTo: {to}\r\nSubject: submitted\r\n\r\nHi there\r\n"
    ).encode()


def test_auth_is_not_offered_or_accepted_without_tls(submission_server, alice):
    """RFC 4954 §4 / RFC 8314: no password over plain text (538 5.7.11)."""
    with Raw(submission_server.port) as c:
        c.reply()
        ehlo = c.cmd("EHLO client")
        assert "AUTH" not in ehlo and "STARTTLS" in ehlo
        assert c.cmd("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABwdw==").startswith("538 5.7.11")
        assert c.cmd("MAIL FROM:<alice@example.test>").startswith("530 5.7.0")


def test_starttls_then_auth_plain_and_send_local_and_remote(
    submission_server, alice, carol, remote_mx, tls_client
):
    """Local recipients go to the store at once; the rest to the queue, then the remote MX."""
    with smtplib.SMTP("127.0.0.1", submission_server.port, timeout=10) as c:
        c.starttls(context=tls_client)
        c.ehlo("client")
        assert "PLAIN" in c.esmtp_features["auth"] and "LOGIN" in c.esmtp_features["auth"]
        c.login("alice@example.test", PASSWORD)
        refused = c.sendmail(
            "alice@example.test",
            ["carol@example.test", "dave@remote.test"],
            message(to="carol@example.test, dave@remote.test"),
        )
    assert refused == {}
    [local] = inbox(carol)
    assert b"with ESMTPSA" in local and b"Message-ID: <" in local and b"Date: " in local
    jobs.drain()
    [sent] = remote_mx.messages
    assert sent.rcpt_tos == ["dave@remote.test"] and sent.mail_from == "alice@example.test"
    assert sent.tls  # opportunistic STARTTLS to the remote MX
    assert b"Subject: submitted" in sent.content
    assert not QueuedMessage.objects.exists()


def test_implicit_tls_with_auth_login(submissions_server, alice, carol, tls_client):
    with smtplib.SMTP_SSL(
        "127.0.0.1", submissions_server.port, timeout=10, context=tls_client
    ) as c:
        c.ehlo("client")
        assert "STARTTLS" not in c.esmtp_features
        c.user, c.password = "alice@example.test", PASSWORD
        code, _ = c.auth("LOGIN", c.auth_login, initial_response_ok=False)
        assert code == 235
        assert c.sendmail("alice@example.test", ["carol@example.test"], message()) == {}
    assert len(inbox(carol)) == 1


def test_sender_spoofing_is_refused(submission_server, alice, carol, tls_client):
    """RFC 6409 §6.1: envelope sender and From: must be the account's (553/550 5.7.1)."""
    with smtplib.SMTP("127.0.0.1", submission_server.port, timeout=10) as c:
        c.starttls(context=tls_client)
        c.login("alice@example.test", PASSWORD)
        code, text = c.mail("carol@example.test")
        assert code == 553 and text.startswith(b"5.7.1")
        c.rset()
        assert c.mail("alice@example.test")[0] == 250
        assert c.rcpt("carol@example.test")[0] == 250
        code, text = c.data(message(sender="carol@example.test"))
        assert code == 550 and text.startswith(b"5.7.1")
    assert inbox(carol) == []


def test_an_alias_of_the_account_may_be_the_sender(submission_server, alice, carol, tls_client):
    from mailhost.directory import add_alias

    add_alias("postmaster@example.test", ["alice@example.test"])
    with smtplib.SMTP("127.0.0.1", submission_server.port, timeout=10) as c:
        c.starttls(context=tls_client)
        c.login("alice@example.test", PASSWORD)
        raw = message(sender="postmaster@example.test")
        assert c.sendmail("postmaster@example.test", ["carol@example.test"], raw) == {}


def test_failed_logins_lock_out_the_account(settings, submission_server, alice, tls_client):
    """Failures are rate-limited per IP and account (mailhost.auth)."""
    settings.BUZON_AUTH_MAX_FAILURES = 3
    with smtplib.SMTP("127.0.0.1", submission_server.port, timeout=10) as c:
        c.starttls(context=tls_client)
        for _ in range(3):
            with pytest.raises(smtplib.SMTPAuthenticationError):
                c.login("alice@example.test", "wrong")
        with pytest.raises(smtplib.SMTPAuthenticationError):
            c.login("alice@example.test", PASSWORD)


def test_sending_rate_limit_per_account(settings, submission_server, alice, carol, tls_client):
    settings.BUZON_SEND_RATE_PER_HOUR = 2
    with smtplib.SMTP("127.0.0.1", submission_server.port, timeout=10) as c:
        c.starttls(context=tls_client)
        c.login("alice@example.test", PASSWORD)
        for _ in range(2):
            assert c.sendmail("alice@example.test", ["carol@example.test"], message()) == {}
        code, text = c.mail("alice@example.test")
        assert code == 451 and text.startswith(b"4.7.1")


def test_unauthenticated_submission_is_refused(submission_server, alice, tls_client):
    with smtplib.SMTP("127.0.0.1", submission_server.port, timeout=10) as c:
        c.starttls(context=tls_client)
        c.ehlo("client")
        code, text = c.mail("alice@example.test")
    assert code == 530 and text.startswith(b"5.7.0")


def test_swaks_submission_with_tls_and_auth(submission_server, alice, carol):
    out = subprocess.run(
        [
            "swaks", "--server", "127.0.0.1", "--port", str(submission_server.port),
            "--from", "alice@example.test", "--to", "carol@example.test",
            "--header", "From: alice@example.test", "--tls", "--pipeline",
            "--auth", "PLAIN", "--auth-user", "alice@example.test",
            "--auth-password", PASSWORD, "--timeout", "20",
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert len(inbox(carol)) == 1


def test_authenticated_mx_session_may_relay(mx_server, alice, remote_mx, tls_client):
    """On port 25, relaying is for authenticated sessions only."""
    with smtplib.SMTP("127.0.0.1", mx_server.port, timeout=10) as c:
        c.starttls(context=tls_client)
        c.login("alice@example.test", PASSWORD)
        assert (
            c.sendmail("alice@example.test", ["x@remote.test"], message(to="x@remote.test")) == {}
        )
    jobs.drain()
    assert [m.rcpt_tos for m in remote_mx.messages] == [["x@remote.test"]]
