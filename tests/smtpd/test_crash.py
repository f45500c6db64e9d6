"""`manage.py smtpd` killed with SIGKILL loses no acknowledged message and no queued one."""

from __future__ import annotations

import re
import signal
import smtplib
import socket
import threading
import time
from datetime import timedelta
from smtpd.outbound import deliver_message

import pytest
from django.utils import timezone

from mailhost import queue, queue_spool
from mailhost.models import QueuedMessage
from tests.conftest import PASSWORD
from tests.processes import popen_manage
from tests.smtpd.test_mx import inbox

pytestmark = pytest.mark.django_db(transaction=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_ports(proc, names: set[str], timeout: float = 60) -> dict[str, int]:
    ports: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline and not names <= set(ports):
        line = proc.stdout.readline().decode()
        if not line:
            break
        lines.append(line)
        if m := re.match(r"^(\w+) listening on 127\.0\.0\.1:(\d+)", line):
            ports[m.group(1)] = int(m.group(2))
    assert names <= set(ports), "".join(lines)
    return ports


def test_sigkill_loses_no_acknowledged_or_queued_message(
    settings, alice, dns_server, remote_mx, tls_client
):
    dead = free_port()  # the remote MX is "down" while the child runs
    proc = popen_manage(
        "smtpd", "--smtp-port", "auto", "--submission-port", "0",
        "--submissions-port", "auto", "--lmtp-port", "0",
        BUZON_DNS_SERVERS=settings.BUZON_DNS_SERVERS,
        BUZON_TLS_CERT=settings.BUZON_TLS_CERT,
        BUZON_TLS_KEY=settings.BUZON_TLS_KEY,
        BUZON_REMOTE_SMTP_PORT=str(dead),
        BUZON_SMTP_VERIFY="false",
        BUZON_HOSTNAME="mx.example.test",
    )  # fmt: skip
    acked_in: list[str] = []
    acked_out: list[str] = []
    stop = threading.Event()

    def inbound(port: int) -> None:
        i = 0
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
                while not stop.is_set():
                    i += 1
                    mid = f"<in{i}@remote.test>"
                    raw = f"Message-ID: {mid}\r\nSubject: in {i}\r\n\r\nx\r\n".encode()
                    c.sendmail("bob@remote.test", ["alice@example.test"], raw)
                    acked_in.append(mid)
        except (OSError, smtplib.SMTPException):
            pass

    def outbound(port: int) -> None:
        i = 0
        try:
            with smtplib.SMTP_SSL("127.0.0.1", port, timeout=10, context=tls_client) as c:
                c.login("alice@example.test", PASSWORD)
                while not stop.is_set():
                    i += 1
                    mid = f"<out{i}@example.test>"
                    raw = (
                        f"From: alice@example.test\r\nMessage-ID: {mid}\r\n"
                        f"Subject: out {i}\r\n\r\ny\r\n"
                    ).encode()
                    c.sendmail("alice@example.test", ["dave@remote.test"], raw)
                    acked_out.append(mid)
        except (OSError, smtplib.SMTPException):
            pass

    try:
        ports = read_ports(proc, {"smtp", "submissions"})
        threads = [
            threading.Thread(target=inbound, args=(ports["smtp"],)),
            threading.Thread(target=outbound, args=(ports["submissions"],)),
        ]
        for t in threads:
            t.start()
        time.sleep(2.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        stop.set()
        for t in threads:
            t.join(15)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    assert acked_in and acked_out, (acked_in, acked_out)
    stored = b"\n".join(inbox(alice))
    assert [m for m in acked_in if m.encode() not in stored] == []
    queued = {
        re.search(rb"Message-ID: (<[^>]+>)", queue_spool.read(q.sha256)).group(1).decode()
        for q in QueuedMessage.objects.all()
    }
    assert remote_mx.messages == []
    # Every acknowledged submission is in the queue (rows and spool file): send them now.
    # A claim the child held when it died is due once its lease has run out.
    later = timezone.now() + timedelta(seconds=queue.LEASE_SECONDS + 1)
    for message_id in queue.flush(now=later):
        deliver_message(message_id, now=later)
    sent = b"\n".join(m.content for m in remote_mx.messages)
    missing = [m for m in acked_out if m.encode() not in sent]
    assert missing == [], (missing, sorted(queued))


def test_smtpd_command_serves_every_listener_and_stops_on_sigterm(settings, alice, tls_client):
    """`manage.py smtpd`: MX, submission, submissions and LMTP, then a clean SIGTERM."""
    proc = popen_manage(
        "smtpd", "--smtp-port", "auto", "--submission-port", "auto",
        "--submissions-port", "auto", "--lmtp-port", "auto",
        BUZON_TLS_CERT=settings.BUZON_TLS_CERT, BUZON_TLS_KEY=settings.BUZON_TLS_KEY,
        BUZON_DNS_SERVERS=settings.BUZON_DNS_SERVERS,
    )  # fmt: skip
    try:
        ports = read_ports(proc, {"smtp", "submission", "submissions", "lmtp"})
        with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=10) as c:
            assert c.ehlo("x")[0] == 250
        with smtplib.SMTP("127.0.0.1", ports["submission"], timeout=10) as c:
            c.starttls(context=tls_client)
            c.login("alice@example.test", PASSWORD)
        with smtplib.SMTP_SSL(
            "127.0.0.1", ports["submissions"], timeout=10, context=tls_client
        ) as c:
            c.login("alice@example.test", PASSWORD)
        with smtplib.LMTP("127.0.0.1", ports["lmtp"], timeout=10) as c:
            assert c.ehlo("x")[0] == 250  # smtplib.LMTP sends LHLO
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, out
