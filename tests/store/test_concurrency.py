"""UIDs under concurrency: assigned in the transaction that locks the mailbox row."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import close_old_connections

from mailhost import store


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_deliveries_get_fifty_distinct_ascending_uids(alice):
    def one(i: int):
        close_old_connections()
        try:
            raw = f"Subject: n{i}\r\n\r\nbody {i}\r\n".encode()
            [result] = store.deliver(raw, mail_from="", rcpt_to=["alice@example.test"])
            return result.delivered[0].uid
        finally:
            close_old_connections()

    with ThreadPoolExecutor(max_workers=10) as pool:
        uids = list(pool.map(one, range(50)))
    assert sorted(uids) == list(range(1, 51))
    box = store.lookup_mailbox(alice.id, "INBOX")
    assert store.message_uids(alice.id, box.id) == list(range(1, 51))
    assert box.uidnext == 51


@pytest.mark.django_db(transaction=True)
def test_concurrent_flag_changes_get_distinct_modseqs(alice):
    box = store.lookup_mailbox(alice.id, "INBOX").id
    for i in range(20):
        store.append(alice.id, "INBOX", f"Subject: {i}\r\n\r\nx\r\n".encode())

    def flag(uid: int):
        close_old_connections()
        try:
            return store.set_flags(alice.id, box, [uid], ["\\Seen"]).changed[0].modseq
        finally:
            close_old_connections()

    with ThreadPoolExecutor(max_workers=8) as pool:
        modseqs = list(pool.map(flag, range(1, 21)))
    assert len(set(modseqs)) == 20
