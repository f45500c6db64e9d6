"""POP3 and IMAP share the store: deletions, expunges and UIDs agree (ARCHITECTURE)."""

import asyncio
import poplib
import socket
import time

import pytest

from mailhost import store
from tests.conftest import PASSWORD

from .conftest import ALICE, inbox_uids, login, make_message, put

pytestmark = pytest.mark.django_db(transaction=True)


def test_uidl_names_the_imap_message(pop3_server, plaintext_ok, alice):
    """UIDL is "<UIDVALIDITY>.<UID>": what IMAP shows for the same message."""
    uids = put(alice, make_message(1), make_message(2))
    status = store.mailbox_status(store.lookup_mailbox(alice.id, "INBOX").id)
    client = login(pop3_server.port)
    listing = [line.split()[1].decode() for line in client.uidl()[1]]
    client.quit()
    assert listing == [f"{status.mailbox.uidvalidity}.{u}" for u in uids]
    # Stable across sessions.
    client = login(pop3_server.port)
    assert [line.split()[1].decode() for line in client.uidl()[1]] == listing
    client.quit()


def test_pop3_delete_is_an_expunge_imap_sessions_see(pop3_server, plaintext_ok, alice):
    uids = put(alice, make_message(1), make_message(2), make_message(3))
    box = store.lookup_mailbox(alice.id, "INBOX")
    before = store.changes_since(alice.id, box.id, 0).highestmodseq
    client = login(pop3_server.port)
    client.dele(1)
    client.dele(3)
    client.quit()
    assert inbox_uids(alice) == [uids[1]]
    changes = store.changes_since(alice.id, box.id, before)
    assert changes.expunged == [uids[0], uids[2]]  # IMAP reports these as EXPUNGE/VANISHED


def test_pop3_quit_publishes_one_expunged_event(pop3_server, plaintext_ok, alice):
    uids = put(alice, make_message(1), make_message(2))
    box = store.lookup_mailbox(alice.id, "INBOX")

    async def watch():
        with store.events.subscribe(alice.id) as sub:
            await asyncio.get_running_loop().run_in_executor(None, delete_all)
            return await sub.get(5)

    def delete_all():
        client = login(pop3_server.port)
        client.dele(1)
        client.dele(2)
        client.quit()

    event = asyncio.run(watch())
    assert event is not None and event.kind == "expunged"
    assert (event.mailbox_id, event.uids) == (box.id, uids)


def test_imap_expunge_is_gone_at_the_next_pop3_session(pop3_server, plaintext_ok, alice):
    uids = put(alice, make_message(1), make_message(2))
    box = store.lookup_mailbox(alice.id, "INBOX")
    store.set_flags(alice.id, box.id, [uids[0]], ["\\Deleted"])
    store.expunge(alice.id, box.id)  # IMAP EXPUNGE
    client = login(pop3_server.port)
    assert client.stat()[0] == 1
    assert client.uidl(1).endswith(f".{uids[1]}".encode())
    client.quit()


def test_imap_expunge_during_a_pop3_session_breaks_nothing(pop3_server, plaintext_ok, alice):
    """The maildrop is a snapshot: the bytes are still served (the blob outlives the row
    for the orphan grace period), and deleting an already expunged message is no error."""
    raw = make_message(1)
    uids = put(alice, raw, make_message(2))
    box = store.lookup_mailbox(alice.id, "INBOX")
    client = login(pop3_server.port)
    store.expunge(alice.id, box.id, [uids[0]], only_deleted=False)
    assert b"\r\n".join(client.retr(1)[1]) + b"\r\n" == raw
    client.dele(1)
    assert client.quit().startswith(b"+OK")
    assert inbox_uids(alice) == [uids[1]]


def test_dropped_connection_deletes_nothing_and_frees_the_lock(pop3_server, plaintext_ok, alice):
    """RFC 1939 §6: without QUIT there is no UPDATE state."""
    uids = put(alice, make_message(1), make_message(2))
    sock = socket.create_connection(("127.0.0.1", pop3_server.port), timeout=5)
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(f"USER {ALICE}\r\nPASS {PASSWORD}\r\nDELE 1\r\nDELE 2\r\n".encode())
    replies = [f.readline() for _ in range(4)]
    assert all(r.startswith(b"+OK") for r in replies)
    f.close()
    sock.close()
    deadline = time.monotonic() + 5
    while True:  # the server notices the EOF and releases the lock
        try:
            client = login(pop3_server.port)
            break
        except poplib.error_proto as e:
            assert b"[IN-USE]" in e.args[0] and time.monotonic() < deadline
            time.sleep(0.05)
    assert client.stat()[0] == 2
    client.quit()
    assert inbox_uids(alice) == uids


def test_second_session_in_the_same_process_gets_in_use(pop3_server, plaintext_ok, alice):
    """RFC 1939 §8 / RFC 2449 §8.1.1: -ERR [IN-USE] while another session holds the drop."""
    first = login(pop3_server.port)
    second = poplib.POP3("127.0.0.1", pop3_server.port, timeout=10)
    second.user(ALICE)
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        second.pass_(PASSWORD)
    first.quit()
    second.user(ALICE)
    assert second.pass_(PASSWORD).startswith(b"+OK")
    second.quit()
