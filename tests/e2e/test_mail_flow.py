"""End to end through `runmail`: in over SMTP, out over IMAP and POP3, deletions seen by both."""

import imaplib
import poplib
import re
import signal
import smtplib

import pytest

from tests.processes import popen_manage
from tests.test_runmail import read_until

MESSAGE = (
    b"From: Bob <bob@remote.test>\r\nTo: demo@example.test\r\nSubject: e2e\r\n"
    b"Message-ID: <e2e-1@remote.test>\r\n\r\nHello through every door.\r\n"
)


@pytest.mark.django_db(transaction=True)
def test_smtp_in_imap_and_pop3_out():
    proc = popen_manage(
        "runmail", "--auto-ports", BUZON_ALLOW_PLAINTEXT_AUTH="1", BUZON_SMTP_VERIFY="0"
    )
    try:
        text = "".join(read_until(proc, r"^web listening on"))
        password = re.search(r"demo@example\.test\s+password (\S+)", text).group(1)
        ports = {k: int(v) for k, v in re.findall(r"^(\w+) listening on [\d.]+:(\d+)", text, re.M)}

        with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=10) as smtp:
            assert smtp.sendmail("bob@remote.test", ["demo@example.test"], MESSAGE) == {}

        with imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=10) as imap:
            imap.login("demo@example.test", password)
            imap.select("INBOX")
            _, data = imap.uid("FETCH", "1", "(BODY.PEEK[])")
            stored = data[0][1]
            assert stored.endswith(MESSAGE) and stored.startswith(b"Received: ")
            imap.logout()

        pop = poplib.POP3("127.0.0.1", ports["pop3"], timeout=10)
        pop.user("demo@example.test")
        pop.pass_(password)
        assert pop.stat()[0] == 1
        assert b"\r\n".join(pop.retr(1)[1]).endswith(MESSAGE.rstrip(b"\r\n"))
        pop.dele(1)
        pop.quit()

        with imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=10) as imap:
            imap.login("demo@example.test", password)
            assert imap.select("INBOX") == ("OK", [b"0"])
            imap.logout()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except Exception:
            proc.kill()
    assert proc.returncode == 0
