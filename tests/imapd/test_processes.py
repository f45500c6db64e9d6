"""`manage.py imapd` as a process, and two imapd processes behaving as one server."""

from __future__ import annotations

import imaplib
import re
import signal
import socket
import time

import pytest

from tests.conftest import PASSWORD
from tests.imapd.conftest import ALICE
from tests.processes import popen_manage

pytestmark = pytest.mark.django_db(transaction=True)


def start_imapd(*args: str):
    proc = popen_manage(
        "imapd",
        "--imap-port",
        "auto",
        "--imaps-port",
        "0",
        *args,
        BUZON_ALLOW_PLAINTEXT_AUTH="true",
    )
    deadline = time.monotonic() + 60
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if not line:
            break
        lines.append(line)
        m = re.match(r"imap listening on 127\.0\.0\.1:(\d+)", line)
        if m:
            return proc, int(m.group(1))
    proc.kill()
    raise AssertionError("imapd did not start:\n" + "".join(lines))


def stop(proc) -> str:
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, out
    return out


def test_imapd_command_serves_and_exits_cleanly_on_sigterm(alice):
    proc, port = start_imapd()
    try:
        client = imaplib.IMAP4("127.0.0.1", port, timeout=10)
        client.login(ALICE, PASSWORD)
        assert client.select("INBOX")[0] == "OK"
        client.logout()
    finally:
        stop(proc)


def idle_until(sock: socket.socket, pattern: bytes, timeout: float) -> tuple[bytes, float]:
    started, data = time.monotonic(), b""
    sock.settimeout(0.2)
    while time.monotonic() - started < timeout:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        data += chunk
        if re.search(pattern, data):
            return data, time.monotonic() - started
    raise AssertionError(f"no {pattern!r} within {timeout}s; got {data!r}")


def test_idle_on_one_process_sees_changes_made_through_another(alice):
    """Two imapd processes are one server: EXISTS, FETCH FLAGS and EXPUNGE within a second
    (events over Redis when REDIS_URL is set, as in CI's second run; else over the local
    Unix-socket bus, mailhost/store/localbus.py)."""
    from mailhost import store

    first, port_a = start_imapd()
    second, port_b = start_imapd()
    try:
        from tests.imapd.rawclient import RawClient

        watcher = RawClient(port_a)
        watcher.login()
        watcher.command(b"s", b"SELECT INBOX")
        watcher.send(b"i IDLE\r\n")
        assert watcher.line().startswith(b"+ ")
        actor = imaplib.IMAP4("127.0.0.1", port_b, timeout=10)
        actor.login(ALICE, PASSWORD)
        actor.append("INBOX", None, None, b"Subject: via b\r\n\r\nx\r\n")
        _, elapsed = idle_until(watcher.sock, rb"\* 1 EXISTS", 5)
        assert elapsed < 1.0
        actor.select("INBOX")
        actor.store("1", "+FLAGS", "\\Flagged")
        _, elapsed = idle_until(watcher.sock, rb"FETCH \(UID 1 FLAGS \([^)]*Flagged", 5)
        assert elapsed < 1.0
        store.deliver(b"Subject: direct\r\n\r\ny\r\n", mail_from="", rcpt_to=[ALICE])
        _, elapsed = idle_until(watcher.sock, rb"\* 2 EXISTS", 5)
        assert elapsed < 1.0
        actor.store("1", "+FLAGS", "\\Deleted")
        actor.expunge()
        _, elapsed = idle_until(watcher.sock, rb"\* 1 EXPUNGE", 5)
        assert elapsed < 1.0
        watcher.send(b"DONE\r\n")
        watcher.close()
        actor.logout()
        inbox = store.lookup_mailbox(alice.id, "INBOX")
        assert store.message_uids(alice.id, inbox.id) == [2]  # UIDs never collide
    finally:
        stop(first)
        stop(second)
