"""A full mailbox is refused at RCPT, as Postfix does with Dovecot's quota-status service,
so the sending MTA retries that recipient alone (RFC 5321 §4.2.5 allows one reply after
DATA only; RFC 3463 4.2.2 / 5.2.2)."""

import smtplib

from mailhost.models import Account

RAW = b"From: bob@remote.test\r\nSubject: q\r\n\r\nbody\r\n"


def test_full_mailbox_gets_452_at_rcpt_and_others_still_get_mail(mx_server, alice, carol):
    Account.objects.filter(id=carol.id).update(quota_bytes=100, used_bytes=100)
    with smtplib.SMTP("127.0.0.1", mx_server.port, timeout=10) as c:
        c.ehlo("client.remote.test")
        assert c.mail("bob@remote.test")[0] == 250
        code, text = c.rcpt("carol@example.test")
        assert (code, text[:5]) == (452, b"4.2.2")
        assert c.rcpt("alice@example.test")[0] == 250
        assert c.data(RAW)[0] == 250


def test_declared_size_larger_than_the_room_left_is_refused(mx_server, alice, settings):
    """RFC 1870 §4: the SIZE declared at MAIL FROM lets us refuse before the data."""
    Account.objects.filter(id=alice.id).update(quota_bytes=1000, used_bytes=900)
    with smtplib.SMTP("127.0.0.1", mx_server.port, timeout=10) as c:
        c.ehlo("client.remote.test")
        assert c.mail("bob@remote.test", ["SIZE=500"])[0] == 250
        assert c.rcpt("alice@example.test")[0] == 452
        c.rset()
        assert c.mail("bob@remote.test", ["SIZE=50"])[0] == 250
        assert c.rcpt("alice@example.test")[0] == 250
    settings.BUZON_QUOTA_PERMANENT = True
    Account.objects.filter(id=alice.id).update(used_bytes=1000)
    with smtplib.SMTP("127.0.0.1", mx_server.port, timeout=10) as c:
        c.ehlo("client.remote.test")
        c.mail("bob@remote.test")
        code, text = c.rcpt("alice@example.test")
        assert (code, text[:5]) == (552, b"5.2.2")
