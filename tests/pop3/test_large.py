"""RETR of a 50 MB message streams from the blob: memory stays far below the message size."""

import hashlib
import socket
import tracemalloc

import pytest

from imapd.pop3 import wire
from tests.conftest import PASSWORD

from .conftest import ALICE, put

pytestmark = pytest.mark.django_db(transaction=True)
SIZE = 50 * 1024 * 1024


def big_message() -> bytes:
    # Bare LF line ends and leading dots: the slow path (normalise and stuff) throughout.
    line = b"The quick brown fox jumps over the lazy dog 0123456789 abcdefghij\n.dot line\n"
    head = b"From: bob@example.org\r\nTo: alice@example.test\r\nSubject: big\r\n\r\n"
    return head + line * ((SIZE - len(head)) // len(line))


def test_retr_of_50_mb_streams_in_bounded_memory(pop3_server, plaintext_ok, alice):
    raw = big_message()
    put(alice, raw)
    expected = hashlib.sha256()
    expected_len = 0
    for part in wire.encode(raw[i : i + (1 << 20)] for i in range(0, len(raw), 1 << 20)):
        expected.update(part)
        expected_len += len(part)
    del raw

    tracemalloc.start()
    try:
        sock = socket.create_connection(("127.0.0.1", pop3_server.port), timeout=30)
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(f"USER {ALICE}\r\nPASS {PASSWORD}\r\nRETR 1\r\n".encode())
        assert f.readline().startswith(b"+OK") and f.readline().startswith(b"+OK")
        assert f.readline().startswith(b"+OK ")
        got, received = hashlib.sha256(), 0
        buf = bytearray(1 << 16)
        tail = b""
        while not tail.endswith(b"\r\n.\r\n"):
            n = f.readinto1(buf)
            assert n, "connection closed during RETR"
            chunk = bytes(buf[:n])
            got.update(chunk)
            received += n
            tail = (tail + chunk)[-5:]
        sock.sendall(b"QUIT\r\n")
        assert f.readline().startswith(b"+OK")
        sock.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == expected_len and got.hexdigest() == expected.hexdigest()
    assert peak < 8 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB for a 50 MiB message"
