"""`manage.py imapd --workers N`: several processes on one port behaving as one server."""

from __future__ import annotations

import imaplib
import os
import signal
import time

import psutil
import pytest

from tests.conftest import PASSWORD
from tests.imapd.conftest import ALICE
from tests.imapd.rawclient import RawClient
from tests.imapd.test_processes import idle_until
from tests.processes import manage

pytestmark = pytest.mark.django_db(transaction=True)


def start_workers(count: int):
    from tests.imapd.test_processes import start_imapd

    proc, port = start_imapd("--workers", str(count))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = psutil.Process(proc.pid).children()
        if len(children) == count:
            return proc, port, [c.pid for c in children]
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("workers did not start")


def worker_of(client_port: int, workers: list[int]) -> int:
    """The worker pid holding the server side of the connection from `client_port`."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for pid in workers:
            for conn in psutil.Process(pid).net_connections("tcp"):
                if conn.raddr and conn.raddr.port == client_port:
                    return pid
        time.sleep(0.05)
    raise AssertionError(f"no worker holds the connection from port {client_port}")


def stop_and_check(proc, workers: list[int]) -> str:
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, out
    for pid in workers:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie", out
    return out


def test_workers_share_the_port_and_idle_sees_deliveries_from_any_of_them(alice):
    from mailhost import store

    proc, port, workers = start_workers(2)
    try:
        clients = []
        for _ in range(16):  # the kernel spreads connections over the workers' sockets
            client = RawClient(port)
            client.login()
            assert client.command(b"s", b"SELECT INBOX")[-1].startswith(b"s OK")
            clients.append(client)
        by_worker: dict[int, list[RawClient]] = {}
        for client in clients:
            pid = worker_of(client.sock.getsockname()[1], workers)
            by_worker.setdefault(pid, []).append(client)
        assert set(by_worker) == set(workers), "every worker serves connections"

        watcher = by_worker[workers[0]][0]
        actor = by_worker[workers[1]][0]
        watcher.send(b"i IDLE\r\n")
        assert watcher.line().startswith(b"+ ")
        # A delivery from outside any worker (this process; over Redis or the local bus)...
        store.deliver(b"Subject: direct\r\n\r\ny\r\n", mail_from="", rcpt_to=[ALICE])
        _, elapsed = idle_until(watcher.sock, rb"\* 1 EXISTS", 5)
        assert elapsed < 1.0
        # ...and an APPEND and a flag change through the other worker.
        lines = actor.command(b"a", b"APPEND INBOX {12+}\r\nSubject: b\r\n")
        assert lines[-1].startswith(b"a OK"), lines
        _, elapsed = idle_until(watcher.sock, rb"\* 2 EXISTS", 5)
        assert elapsed < 1.0
        assert actor.command(b"f", b"STORE 1 +FLAGS (\\Flagged)")[-1].startswith(b"f OK")
        _, elapsed = idle_until(watcher.sock, rb"FETCH \(UID 1 FLAGS \([^)]*Flagged", 5)
        assert elapsed < 1.0
        watcher.send(b"DONE\r\n")
        assert watcher.until_tagged(b"i")[-1].startswith(b"i OK")
        for client in clients:
            assert client.command(b"n", b"NOOP")[-1].startswith(b"n OK")
            client.close()
        inbox = store.lookup_mailbox(alice.id, "INBOX")
        assert store.message_uids(alice.id, inbox.id) == [1, 2]
    finally:
        if proc.poll() is None:
            stop_and_check(proc, workers)


def test_a_worker_that_dies_is_restarted(alice):
    proc, port, workers = start_workers(2)
    try:
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            now = [c.pid for c in psutil.Process(proc.pid).children()]
            if len(now) == 2 and workers[0] not in now:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the dead worker was not replaced")
        for _ in range(6):
            client = imaplib.IMAP4("127.0.0.1", port, timeout=10)
            client.login(ALICE, PASSWORD)
            assert client.select("INBOX")[0] == "OK"
            client.logout()
    finally:
        out = stop_and_check(proc, now)
    assert "exited with status -9" in out


def test_workers_refused_without_a_way_to_share_events(alice):
    result = manage(
        "imapd", "--workers", "2", "--imap-port", "auto", REDIS_URL="", BUZON_LOCAL_EVENTS="false"
    )
    assert result.returncode != 0
    assert b"needs REDIS_URL or BUZON_LOCAL_EVENTS" in result.stderr
    result = manage("pop3d", "--workers", "0")
    assert result.returncode != 0 and b"1 or more" in result.stderr


def test_workers_writing_at_once_keep_uids_distinct(alice):
    """Writers in several processes take turns at the one SQLite writer lock (an flock,
    mailhost/store/tx.py) without stalling or failing; on PostgreSQL the mailbox row lock."""
    import threading

    from mailhost import store

    proc, port, workers = start_workers(2)
    errors: list[str] = []
    try:

        def append_many(n: int) -> None:
            client = imaplib.IMAP4("127.0.0.1", port, timeout=30)
            client.login(ALICE, PASSWORD)
            for i in range(25):
                typ, data = client.append(
                    "INBOX", None, None, b"Subject: %d-%d\r\n\r\nx\r\n" % (n, i)
                )
                if typ != "OK":
                    errors.append(repr(data))
            client.logout()

        threads = [threading.Thread(target=append_many, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors
        inbox = store.lookup_mailbox(alice.id, "INBOX")
        assert store.message_uids(alice.id, inbox.id) == list(range(1, 201))
    finally:
        stop_and_check(proc, workers)
