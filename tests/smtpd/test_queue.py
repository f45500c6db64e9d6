"""The outbound queue against a loopback remote MX: retries, back-off, expiry, DSNs, DKIM."""

from __future__ import annotations

import smtplib
from datetime import timedelta
from io import StringIO
from smtpd import dns as smtp_dns
from smtpd.outbound import deliver_message

import dkim
import pytest
from django.core.management import call_command

from mailhost import jobs, queue
from mailhost.models import QueuedMessage, QueuedRecipient
from tests.conftest import PASSWORD
from tests.smtpd.test_mx import inbox

pytestmark = pytest.mark.django_db(transaction=True)

RAW = b"From: alice@example.test\r\nTo: dave@remote.test\r\nSubject: out\r\n\r\nbody\n"
RAW_CRLF = RAW.replace(b"body\n", b"body\r\n")


def first_attempt(rcpts, sender="alice@example.test", raw=RAW) -> int:
    qid = queue.enqueue(raw, sender, rcpts)
    jobs.drain()
    return qid


def row(address: str) -> QueuedRecipient:
    return QueuedRecipient.objects.get(address=address)


def test_delivered_with_crlf_and_queue_emptied(alice, remote_mx):
    """Line endings normalised to CRLF (RFC 5321 §2.3.8); one connection, two recipients."""
    first_attempt(["dave@remote.test", "erin@remote.test"])
    [sent] = remote_mx.messages
    assert sent.rcpt_tos == ["dave@remote.test", "erin@remote.test"]
    assert sent.content.endswith(b"\r\n\r\nbody\r\n")
    assert not QueuedMessage.objects.exists()


def test_temporary_failure_retries_with_growing_backoff(alice, remote_mx):
    remote_mx.rcpt["dave@remote.test"] = "450 4.2.1 Mailbox busy, try later"
    qid = first_attempt(["dave@remote.test"])
    r = row("dave@remote.test")
    assert (r.state, r.attempts) == ("queued", 1)
    assert "450 4.2.1 Mailbox busy" in r.last_reply
    first_wait = r.next_attempt - r.last_attempt
    assert first_wait == timedelta(seconds=60)
    assert deliver_message(qid, now=r.last_attempt + timedelta(seconds=30)) == []  # not due
    second = r.next_attempt + timedelta(seconds=1)
    deliver_message(qid, now=second)
    r = row("dave@remote.test")
    assert r.attempts == 2 and r.next_attempt - second == timedelta(seconds=120)
    del remote_mx.rcpt["dave@remote.test"]
    deliver_message(qid, now=r.next_attempt)
    assert [m.rcpt_tos for m in remote_mx.messages] == [["dave@remote.test"]]
    assert not QueuedMessage.objects.exists()
    assert inbox(alice) == []  # no DSN for a success


def test_expiry_sends_a_dsn_to_the_local_sender(settings, alice, remote_mx):
    """RFC 3464 DSN after the queue lifetime (4.4.7), delivered to the sender's INBOX."""
    settings.BUZON_QUEUE_LIFETIME = 600
    remote_mx.rcpt["dave@remote.test"] = "451 4.3.0 Not now"
    qid = first_attempt(["dave@remote.test"])
    msg = QueuedMessage.objects.get(id=qid)
    deliver_message(qid, now=msg.expires_at + timedelta(seconds=1))
    assert not QueuedMessage.objects.exists()
    [dsn] = inbox(alice)
    assert b"Content-Type: multipart/report; report-type=delivery-status" in dsn
    assert b"Final-Recipient: rfc822; dave@remote.test" in dsn
    assert b"Action: failed" in dsn and b"Status: 4.4.7" in dsn
    assert b"Subject: out" in dsn  # the original header, as text/rfc822-headers


def test_permanent_failure_reports_only_the_failed_recipient(alice, remote_mx):
    remote_mx.rcpt["ghost@remote.test"] = "550 5.1.1 No such user"
    first_attempt(["dave@remote.test", "ghost@remote.test"])
    assert [m.rcpt_tos for m in remote_mx.messages] == [["dave@remote.test"]]
    [dsn] = inbox(alice)
    assert b"Final-Recipient: rfc822; ghost@remote.test" in dsn
    assert b"dave@remote.test" not in dsn.split(b"message/delivery-status")[1].split(b"--")[0]
    assert b"Status: 5.1.1" in dsn and b"Remote-MTA: dns; 127.0.0.1" in dsn
    assert b"Diagnostic-Code: smtp; 550 5.1.1 No such user" in dsn
    assert b"From: Mail Delivery System <MAILER-DAEMON@mx.example.test>" in dsn
    assert not QueuedMessage.objects.exists()


def test_data_rejection_fails_every_accepted_recipient(alice, remote_mx):
    remote_mx.data = "554 5.7.1 Spam"
    first_attempt(["dave@remote.test", "erin@remote.test"])
    [dsn] = inbox(alice)
    assert dsn.count(b"Action: failed") == 2 and b"5.7.1" in dsn


def test_null_mx_fails_at_once(alice, dns_server, remote_mx):
    """RFC 7505 §3: a domain with a null MX accepts no mail; no attempt, a DSN (5.1.10)."""
    dns_server.add("nomail.test", "MX", "0 .")
    first_attempt(["x@nomail.test"])
    [dsn] = inbox(alice)
    assert b"Status: 5.1.10" in dsn
    assert remote_mx.messages == []


def test_nonexistent_domain_fails_and_dns_timeout_retries(alice, dns_server, remote_mx):
    first_attempt(["x@nxdomain.test"])
    assert b"Status: 5.1.2" in inbox(alice)[0]


def test_a_record_fallback_without_mx(alice, dns_server, remote_mx):
    """RFC 5321 §5.1: no MX records, so the domain's own address is the implicit MX."""
    dns_server.add("plain.test", "A", "127.0.0.1")
    first_attempt(["x@plain.test"])
    assert [m.rcpt_tos for m in remote_mx.messages] == [["x@plain.test"]]


def test_mx_preference_order_and_fallback_to_the_next(alice, dns_server, remote_mx):
    dns_server.add("pref.test", "MX", "20 mx.remote.test.", "10 dead.pref.test.")
    dns_server.add("dead.pref.test", "A", "127.0.0.2")  # nothing listens there
    assert smtp_dns.mx_hosts("pref.test") == ["dead.pref.test", "mx.remote.test"]
    first_attempt(["x@pref.test"])
    assert [m.rcpt_tos for m in remote_mx.messages] == [["x@pref.test"]]


def test_null_sender_is_never_bounced(alice, remote_mx):
    """RFC 5321 §4.5.5: no DSN for a message from <> (a DSN about a DSN)."""
    remote_mx.rcpt["ghost@remote.test"] = "550 5.1.1 No such user"
    first_attempt(["ghost@remote.test"], sender="")
    assert inbox(alice) == []
    assert not QueuedMessage.objects.exists()


def test_remote_sender_gets_its_dsn_through_the_queue(alice, remote_mx):
    remote_mx.rcpt["ghost@remote.test"] = "550 5.1.1 No such user"
    first_attempt(["ghost@remote.test"], sender="someone@other.test")
    jobs.drain()
    dsn = [m for m in remote_mx.messages if m.rcpt_tos == ["someone@other.test"]]
    assert len(dsn) == 1 and dsn[0].mail_from == "<>"  # aiosmtpd's spelling of the null path
    assert b"multipart/report" in dsn[0].content


def test_delay_warning_once(settings, alice, remote_mx):
    settings.BUZON_QUEUE_DELAY_WARNING = 100
    remote_mx.rcpt["dave@remote.test"] = "450 4.2.1 Busy"
    qid = first_attempt(["dave@remote.test"])
    created = QueuedMessage.objects.get(id=qid).created
    queue.sweep(now=created + timedelta(seconds=101))
    queue.sweep(now=created + timedelta(seconds=102))
    [warning] = inbox(alice)
    assert b"Action: delayed" in warning and b"Will-Retry-Until:" in warning
    assert QueuedMessage.objects.filter(id=qid).exists()


def test_sweep_recovers_a_claim_left_by_a_killed_worker(alice, remote_mx):
    """A claim whose lease ran out is due again: nothing lives only in a worker."""
    remote_mx.rcpt["dave@remote.test"] = "450 4.2.1 Busy"
    qid = first_attempt(["dave@remote.test"])
    later = row("dave@remote.test").next_attempt + timedelta(seconds=1)
    claim = queue.claim(qid, now=later)  # a worker takes it and dies
    assert claim is not None and queue.sweep(now=later) == []
    del remote_mx.rcpt["dave@remote.test"]
    after_lease = later + timedelta(seconds=queue.LEASE_SECONDS + 1)
    assert queue.sweep(now=after_lease) == [qid]
    deliver_message(qid, now=after_lease)
    assert len(remote_mx.messages) == 1


@pytest.mark.parametrize("ed25519", [False, True], ids=["rsa", "ed25519"])
def test_submitted_mail_is_dkim_signed(
    submission_server, alice, remote_mx, dns_server, tls_client, ed25519
):
    """RFC 6376 (and RFC 8463): the remote side verifies our signature with dkimpy."""
    out = StringIO()
    args = ["example.test", "--selector", "s1"] + (["--ed25519"] if ed25519 else [])
    call_command("dkim_key", *args, stdout=out)
    record = out.getvalue().splitlines()[-1]
    assert record.startswith("s1._domainkey.example.test. IN TXT")
    txt = "".join(part for part in record.split('"')[1::2])
    dns_server.txt("s1._domainkey.example.test", txt)
    with smtplib.SMTP("127.0.0.1", submission_server.port, timeout=10) as c:
        c.starttls(context=tls_client)
        c.login("alice@example.test", PASSWORD)
        c.sendmail("alice@example.test", ["dave@remote.test"], RAW_CRLF)
    jobs.drain()
    [sent] = remote_mx.messages
    assert sent.content.startswith(b"DKIM-Signature: ")
    smtp_dns.resolver()
    assert dkim.verify(sent.content)


def test_alias_to_an_outside_address_is_forwarded(mx_server, alice, remote_mx):
    """Alias targets outside our domains leave through the queue, envelope sender kept."""
    from mailhost.directory import add_alias

    add_alias("team@example.test", ["alice@example.test", "dave@remote.test"])
    with smtplib.SMTP("127.0.0.1", mx_server.port, timeout=10) as c:
        c.sendmail("zed@other.test", ["team@example.test"], b"Subject: fwd\r\n\r\nx\r\n")
    jobs.drain()
    assert len(inbox(alice)) == 1
    [sent] = remote_mx.messages
    assert sent.rcpt_tos == ["dave@remote.test"] and sent.mail_from == "zed@other.test"


def test_relay_host_setting(settings, alice, remote_mx):
    """Everything goes to the relay host, whatever DNS says."""
    settings.BUZON_RELAY_HOST = "127.0.0.1"
    settings.BUZON_RELAY_PORT = remote_mx.port
    settings.BUZON_RELAY_TLS = "none"
    first_attempt(["x@no-dns-at-all.test", "y@remote.test"])
    [sent] = remote_mx.messages
    assert sent.rcpt_tos == ["x@no-dns-at-all.test", "y@remote.test"] and not sent.tls


def test_mailq_list_hold_release_delete_flush(alice, remote_mx):
    remote_mx.rcpt["dave@remote.test"] = "450 4.2.1 Busy"
    qid = first_attempt(["dave@remote.test"])
    out = StringIO()
    call_command("mailq", stdout=out)
    text = out.getvalue()
    assert str(qid) in text and "dave@remote.test" in text and "450 4.2.1 Busy" in text
    call_command("mailq", "--hold", str(qid), stdout=StringIO())
    assert queue.flush() == []  # held: not due
    call_command("mailq", "--release", str(qid), stdout=StringIO())
    del remote_mx.rcpt["dave@remote.test"]
    out = StringIO()
    call_command("mailq", "--flush", stdout=out)
    assert "flushed 1" in out.getvalue()
    assert len(remote_mx.messages) == 1
    qid2 = queue.enqueue(RAW, "alice@example.test", ["later@nowhere.invalid"])
    jobs.drain()
    if QueuedMessage.objects.filter(id=qid2).exists():
        call_command("mailq", "--delete", str(qid2), stdout=StringIO())
    assert not QueuedMessage.objects.exists()
    out = StringIO()
    call_command("mailq", stdout=out)
    assert "empty" in out.getvalue()
