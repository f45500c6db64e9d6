"""The local event bus (mailhost/store/localbus.py): mailbox events between processes of
one machine over Unix datagram sockets, when REDIS_URL is not set."""

from __future__ import annotations

import asyncio
import json
import os
import socket

from mailhost.store import localbus


def _peer(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    return sock


def test_an_event_reaches_every_other_process_socket_but_its_own():
    folder = localbus.directory()
    folder.mkdir(parents=True, exist_ok=True)
    a, b = _peer(str(folder / "1001.sock")), _peer(str(folder / "1002.sock"))
    received: list[dict] = []
    loop = asyncio.new_event_loop()
    try:
        localbus.listen(loop, received.append)
        localbus.publish({"account_id": 1, "mailbox_id": 2, "kind": "added", "uids": [7]})
        for sock in (a, b):
            assert json.loads(sock.recv(65536))["uids"] == [7]
        loop.run_until_complete(asyncio.sleep(0.05))
        assert received == []  # not to itself: the in-process hub already has it
        # a peer publishing to us is delivered on our loop
        a.sendto(b'{"kind": "flags", "uids": [1]}', localbus._own_path)
        loop.run_until_complete(asyncio.sleep(0.05))
        assert received == [{"kind": "flags", "uids": [1]}]
    finally:
        localbus.close()
        loop.close()
        a.close()
        b.close()


def test_a_dead_process_socket_is_removed_and_a_big_event_loses_its_uids():
    folder = localbus.directory()
    folder.mkdir(parents=True, exist_ok=True)
    dead = _peer(str(folder / "2001.sock"))
    dead.close()  # the file stays, nobody reads it: sending is refused
    alive = _peer(str(folder / "2002.sock"))
    try:
        uids = list(range(100_000))  # far over one datagram as JSON
        localbus.publish({"account_id": 1, "mailbox_id": 2, "kind": "expunged", "uids": uids})
        event = json.loads(alive.recv(65536))
        assert event["kind"] == "expunged" and event["uids"] == []
        assert not os.path.exists(folder / "2001.sock")
    finally:
        alive.close()
