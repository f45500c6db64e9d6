"""FETCH from the in-memory cache of what never changes (mailhost/store/fetchcache.py):
byte-identical to the database's answer, never stale on flags, bounded in size.

RFC 9051 §6.4.5 (FETCH) and §7.5.2 (the FETCH response); §7.5.1: a message expunged by
another session may still be fetched until this session is told of the expunge.
"""

from __future__ import annotations

import pytest

from mailhost import store
from mailhost.store import fetchcache, imapview
from tests.conftest import corpus_files
from tests.imapd.rawclient import RawClient

pytestmark = pytest.mark.django_db(transaction=True)

ITEMS = [
    b"(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY)",
    b"(UID FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE MESSAGE-ID)])",
    b"(BODY.PEEK[HEADER] BODY.PEEK[HEADER.FIELDS.NOT (RECEIVED)] RFC822.HEADER)",
    b"(BODY.PEEK[] BODY.PEEK[1] BODY.PEEK[TEXT]<0.100> BODY.PEEK[1.MIME] RFC822.SIZE)",
    b"(FLAGS ENVELOPE BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[]<10.20>)",
]


@pytest.fixture
def reads(monkeypatch):
    """How many times FETCH went to the database for rows."""
    calls = []
    real = imapview._read_rows

    def counted(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(imapview, "_read_rows", counted)
    return calls


def test_cached_answers_are_byte_identical(imap_server, alice, reads):
    files = [p for p in corpus_files() if p.stat().st_size > 0][:40]
    for path in files:
        store.append(alice.id, "INBOX", path.read_bytes(), flags=["\\Seen"])
    client = RawClient(imap_server.port)
    client.login()
    client.command(b"s", b"SELECT INBOX")
    for n, items in enumerate(ITEMS):
        fetchcache.clear()
        first = client.command(b"a%d" % n, b"FETCH 1:* " + items)
        assert reads, items  # the first time from the database
        reads.clear()
        again = client.command(b"a%d" % n, b"FETCH 1:* " + items)
        assert again == first, items
        assert reads == [], items  # then from the cache and the view's flags
        fetchcache.clear()  # some cached, some not: still one answer in order
        client.command(b"b%d" % n, b"FETCH 3:5,9 " + items)
        reads.clear()
        assert client.command(b"a%d" % n, b"FETCH 1:* " + items) == first, items
        assert len(reads) == 1 and 3 not in reads[0] and 1 in reads[0]
    client.close()


def test_flags_changed_elsewhere_are_not_served_stale(imap_server, alice, reads):
    store.append(alice.id, "INBOX", b"Subject: one\r\n\r\nbody\r\n")
    a, b = RawClient(imap_server.port), RawClient(imap_server.port)
    for client in (a, b):
        client.login()
        client.command(b"s", b"SELECT INBOX")
    header = b"FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])"
    a.command(b"a1", header)
    b.command(b"b1", b"STORE 1 +FLAGS.SILENT (\\Flagged)")
    reads.clear()
    lines = a.command(b"a2", header)
    assert any(b"\\Flagged" in line and b"Subject: one" in line for line in lines), lines
    assert reads, "the view was not in sync, so the rows came from the database"
    a.close()
    b.close()


def test_expunged_message_whose_blob_is_gone(alice, settings):
    """A cached message whose blob the collector removed is asked of the database, which no
    longer has it: no response for it, and no error."""
    settings.BUZON_ORPHAN_GRACE_SECONDS = 0
    appended = store.append(alice.id, "INBOX", b"Subject: gone\r\n\r\nbody\r\n")
    box, uid = appended.mailbox_id, appended.uid
    flags = {uid: ((), 1)}
    want = frozenset({"raw"})
    assert imapview.fetch_rows(alice.id, box, [uid], want=want, flags=flags)[0].raw
    store.set_flags(alice.id, box, [uid], ["\\Deleted"])
    store.expunge(alice.id, box)
    store.collect_orphans(grace_seconds=0)
    assert imapview.fetch_rows(alice.id, box, [uid], want=want, flags=flags) == []


def test_cache_keys_include_the_account(alice, carol):
    """An entry is only ever served to the account whose query filled it."""
    appended = store.append(alice.id, "INBOX", b"Subject: mine\r\n\r\nbody\r\n")
    box, uid = appended.mailbox_id, appended.uid
    want = frozenset({"header"})
    imapview.fetch_rows(alice.id, box, [uid], want=want, flags={uid: ((), 1)})
    assert imapview.fetch_rows(carol.id, box, [uid], want=want, flags={uid: ((), 1)}) == []


def test_cache_is_bounded(settings):
    settings.BUZON_IMAP_FETCH_CACHE_MB = 1
    fetchcache.clear()
    for i in range(2000):
        fetchcache.put((1, 1, i), {"sha256": "x" * 64, "size": 1, "header": b"h" * 1000})
    assert fetchcache._total <= 1024 * 1024
    assert fetchcache.get((1, 1, 1999)) is not None
    assert fetchcache.get((1, 1, 0)) is None
    assert fetchcache._total == sum(fetchcache._sizes.values())
    fetchcache.clear()


def test_repeated_flags_fetch_follows_every_change(imap_server, alice):
    """The kept `UID FETCH 1:* (FLAGS)` answer (handlers/messages.py) is replaced whenever
    the view changes: own and other sessions' STOREs, new messages, expunges."""
    for i in range(3):
        store.append(alice.id, "INBOX", b"Subject: %d\r\n\r\nbody\r\n" % i)
    a, b = RawClient(imap_server.port), RawClient(imap_server.port)
    for client in (a, b):
        client.login()
        client.command(b"s", b"SELECT INBOX")

    def flags() -> list[bytes]:
        lines = a.command(b"f", b"UID FETCH 1:* (FLAGS)")
        assert lines[-1].startswith(b"f OK")
        return [line for line in lines[:-1] if b"FETCH (UID" in line]

    first = flags()
    assert len(first) == 3 and flags() == first
    a.command(b"a1", b"STORE 1 +FLAGS.SILENT (\\Seen)")
    assert b"\\Seen" in flags()[0]
    b.command(b"b1", b"STORE 2 +FLAGS.SILENT (\\Flagged)")
    a.command(b"n", b"NOOP")
    assert b"\\Flagged" in flags()[1]
    store.append(alice.id, "INBOX", b"Subject: new\r\n\r\nbody\r\n")
    a.command(b"n", b"NOOP")
    assert len(flags()) == 4
    b.command(b"b2", b"STORE 3 +FLAGS.SILENT (\\Deleted)")
    b.command(b"b3", b"EXPUNGE")
    a.command(b"n", b"NOOP")
    now = flags()
    assert len(now) == 3 and b"UID 3 " not in b"".join(now)
    assert b"* 3 FETCH (UID 4 " in b"".join(now)
    a.close()
    b.close()


def test_appended_message_is_fetched_without_a_query(imap_server, alice, reads):
    """An APPEND leaves what FETCH reads of the message in the cache once committed, the
    same bytes the database gives (INTERNALDATE given with an offset comes back in UTC
    either way)."""
    raw = b"From: a@example.test\r\nSubject: draft\r\n\r\nbody\r\n"
    client = RawClient(imap_server.port)
    client.login()
    client.command(b"s", b"SELECT INBOX")
    lines = client.command(
        b"a", b'APPEND INBOX (\\Draft) "01-Jan-2020 10:00:00 +0200" {%d+}\r\n%s' % (len(raw), raw)
    )
    assert lines[-1].startswith(b"a OK"), lines
    items = ITEMS[0][:-1] + b" BODY.PEEK[HEADER.FIELDS (SUBJECT)])"
    reads.clear()
    cached = client.command(b"f", b"FETCH 1 " + items)
    assert reads == [], "served from what the APPEND left"
    assert b"08:00:00 +0000" in cached[0]
    fetchcache.clear()
    assert client.command(b"f", b"FETCH 1 " + items) == cached
    assert reads, "the second answer came from the database"
    client.close()


def test_rolled_back_append_leaves_nothing_cached(alice):
    """A rolled-back APPEND's UID is handed out again: nothing of it may stay cached."""
    from django.db import transaction

    from mailhost.store import messages

    prep = messages.prepare(b"Subject: never\r\n\r\nbody\r\n")
    with pytest.raises(RuntimeError), transaction.atomic():
        appended = messages.append_prepared(alice.id, "INBOX", prep)
        raise RuntimeError("roll back")
    assert fetchcache.get((alice.id, appended.mailbox_id, appended.uid)) is None
    again = store.append(alice.id, "INBOX", b"Subject: other\r\n\r\nbody\r\n")
    assert again.uid == appended.uid
    row = imapview.fetch_rows(
        alice.id,
        again.mailbox_id,
        [again.uid],
        want=frozenset({"header"}),
        flags={again.uid: ((), 1)},
    )[0]
    assert row.header.startswith(b"Subject: other")
