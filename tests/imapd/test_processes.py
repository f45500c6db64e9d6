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


def test_sigkill_loses_no_acknowledged_append(alice):
    """An APPEND answered OK is committed (and fsync'ed) before the answer: kill -9 the
    server while clients append, then every acknowledged message is there, byte-exact.
    (RFC 9051 §6.3.12: OK means the message was appended.)"""
    import threading

    from mailhost import store

    proc, port = start_imapd()
    acknowledged: list[bytes] = []
    lock = threading.Lock()

    def append_until_killed(n: int) -> None:
        try:
            client = imaplib.IMAP4("127.0.0.1", port, timeout=10)
            client.login(ALICE, PASSWORD)
            for i in range(10_000):
                raw = b"Subject: %d-%d\r\n\r\n%s\r\n" % (n, i, b"x" * (i % 500))
                typ, _ = client.append("INBOX", None, None, raw)
                if typ == "OK":
                    with lock:
                        acknowledged.append(raw)
        except (OSError, imaplib.IMAP4.abort, imaplib.IMAP4.error):
            return  # the server died under us

    threads = [threading.Thread(target=append_until_killed, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    for t in threads:
        t.join(timeout=20)
    assert len(acknowledged) >= 40
    inbox = store.lookup_mailbox(alice.id, "INBOX")
    uids = store.message_uids(alice.id, inbox.id)
    stored = {store.read_message(alice.id, inbox.id, uid) for uid in uids}
    missing = [raw[:20] for raw in acknowledged if raw not in stored]
    assert not missing, f"{len(missing)} acknowledged APPENDs lost: {missing[:3]}"
