"""`manage.py pop3d` in subprocesses: the maildrop lock holds across processes (RFC 1939 §8),
a dead process's lock expires, and SIGTERM exits 0."""

import os
import poplib
import signal
import subprocess
import time

import pytest

from tests.conftest import PASSWORD
from tests.processes import popen_manage

from .conftest import ALICE, inbox_uids, make_message, put

pytestmark = pytest.mark.django_db(transaction=True)
ENV = {"BUZON_ALLOW_PLAINTEXT_AUTH": "1", "BUZON_POP3_LOCK_SECONDS": "2"}


def start_pop3d() -> tuple[subprocess.Popen, int, int]:
    proc = popen_manage("pop3d", "--pop3-port", "auto", "--pop3s-port", "auto", **ENV)
    ports = {}
    deadline = time.monotonic() + 30
    while len(ports) < 2:
        line = proc.stdout.readline().decode()
        assert line, f"pop3d exited with {proc.wait()}"
        assert time.monotonic() < deadline
        if " listening on " in line:
            name, _, address = line.strip().partition(" listening on ")
            ports[name] = int(address.rsplit(":", 1)[1])
    return proc, ports["pop3"], ports["pop3s"]


def stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=15)
    finally:
        proc.stdout.close()


def login(port: int) -> poplib.POP3:
    client = poplib.POP3("127.0.0.1", port, timeout=10)
    client.user(ALICE)
    client.pass_(PASSWORD)
    return client


def test_lock_holds_across_processes_and_expires_when_a_process_dies(alice):
    uids = put(alice, make_message(1), make_message(2))
    a, a_port, _ = start_pop3d()
    b, b_port, b_pop3s = start_pop3d()
    try:
        first = login(a_port)
        first.dele(1)
        second = poplib.POP3("127.0.0.1", b_port, timeout=10)
        second.user(ALICE)
        with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
            second.pass_(PASSWORD)
        time.sleep(1.5)  # past half the lease: the holder renews it, so it stays held
        second.user(ALICE)
        with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
            second.pass_(PASSWORD)
        first.quit()  # UPDATE on process A, lock released
        assert inbox_uids(alice) == [uids[1]]
        second.user(ALICE)
        assert second.pass_(PASSWORD).startswith(b"+OK")
        assert second.stat()[0] == 1
        second.dele(1)
        # Process B dies with the lock held and a deletion pending: nothing is deleted,
        # and the lease runs out (BUZON_POP3_LOCK_SECONDS=2) so A can take the maildrop.
        os.kill(b.pid, signal.SIGKILL)
        b.wait(timeout=10)
        third = poplib.POP3("127.0.0.1", a_port, timeout=10)
        deadline = time.monotonic() + 10
        while True:
            third.user(ALICE)
            try:
                third.pass_(PASSWORD)
                break
            except poplib.error_proto as e:
                assert b"[IN-USE]" in e.args[0] and time.monotonic() < deadline
                time.sleep(0.25)
        assert third.stat()[0] == 1
        third.quit()
        assert inbox_uids(alice) == [uids[1]]
    finally:
        assert stop(a) == 0
        stop(b)


def test_pop3d_exits_0_on_sigterm_with_a_session_open(alice):
    proc, port, pop3s_port = start_pop3d()
    client = poplib.POP3("127.0.0.1", port, timeout=10)
    assert client.getwelcome().startswith(b"+OK")
    assert pop3s_port != port
    assert stop(proc) == 0
