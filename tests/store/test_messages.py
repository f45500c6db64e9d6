"""Messages through the store: UIDs, MODSEQ, flags, copy/move/expunge, quota, blobs."""

import pytest

from mailhost import store
from mailhost.models import Account, Content, ExpungedMessage, Message
from mailhost.store import blobs, imapview

pytestmark = pytest.mark.django_db
RAW = b"From: Bob <bob@example.org>\r\nSubject: Hello\r\n\r\nHi Alice\r\n"


def inbox_id(account):
    return store.lookup_mailbox(account.id, "INBOX").id


def test_append_assigns_ascending_uids_and_stores_bytes_exactly(alice):
    a = store.append(alice.id, "INBOX", RAW)
    b = store.append(alice.id, "inbox", RAW + b"more\r\n", flags=["\\Seen", "$Label1"])
    assert (a.uid, b.uid) == (1, 2)
    assert b.modseq > a.modseq
    assert store.read_message(alice.id, a.mailbox_id, 1) == RAW
    [flags] = store.flags_of(alice.id, a.mailbox_id, [2])
    assert flags.flags == ("\\Seen", "$Label1")


def test_identical_bytes_are_one_blob_with_a_reference_count(alice, carol):
    store.append(alice.id, "INBOX", RAW)
    store.append(carol.id, "INBOX", RAW)
    store.append(alice.id, "Archive", RAW)
    assert Content.objects.get().refcount == 3
    assert len(list(blobs.iter_files())) == 1


def test_flags_add_remove_replace_bump_modseq_only_on_change(alice):
    box = inbox_id(alice)
    store.append(alice.id, "INBOX", RAW)
    r1 = store.set_flags(alice.id, box, [1], ["\\Flagged", "work"], "add")
    assert r1.changed[0].flags == ("\\Flagged", "work")
    r2 = store.set_flags(alice.id, box, [1], ["\\Flagged"], "add")
    assert r2.changed == []  # nothing changed: no new MODSEQ
    r3 = store.set_flags(alice.id, box, [1], ["\\Seen"], "replace")
    assert r3.changed[0].flags == ("\\Seen",)
    assert r3.changed[0].modseq > r1.changed[0].modseq
    r4 = store.set_flags(alice.id, box, [1], ["\\Seen"], "remove")
    assert r4.changed[0].flags == ()


def test_unchangedsince_refuses_messages_changed_later(alice):
    """RFC 7162 §3.1.3: STORE (UNCHANGEDSINCE m) fails for messages with MODSEQ > m."""
    box = inbox_id(alice)
    first = store.append(alice.id, "INBOX", RAW)
    store.append(alice.id, "INBOX", RAW + b"2")
    store.set_flags(alice.id, box, [2], ["\\Seen"])
    result = store.set_flags(alice.id, box, [1, 2], ["\\Flagged"], unchanged_since=first.modseq + 1)
    assert result.modified == [2]
    assert [c.uid for c in result.changed] == [1]


def test_expunge_removes_only_deleted_and_leaves_tombstones(alice):
    box = inbox_id(alice)
    for i in range(3):
        store.append(alice.id, "INBOX", RAW + str(i).encode())
    store.set_flags(alice.id, box, [1, 3], ["\\Deleted"])
    before = store.lookup_mailbox(alice.id, "INBOX").highestmodseq
    assert store.expunge(alice.id, box) == [1, 3]
    assert store.message_uids(alice.id, box) == [2]
    changes = store.changes_since(alice.id, box, before)
    assert changes.expunged == [1, 3]
    # Blobs of expunged messages become orphans, collected after the grace period.
    assert Content.objects.filter(refcount=0).count() == 2
    assert store.collect_orphans(grace_seconds=0).rows == 2
    assert len(list(blobs.iter_files())) == 1


def test_copy_and_move_report_uid_pairs(alice):
    """RFC 4315 COPYUID and RFC 6851 MOVE."""
    box = inbox_id(alice)
    for i in range(3):
        store.append(alice.id, "INBOX", RAW + str(i).encode(), flags=["\\Seen"])
    copied = store.copy(alice.id, box, [1, 3], "Archive")
    assert copied.source_uids == [1, 3] and copied.dest_uids == [1, 2]
    moved = store.move(alice.id, box, [2], "Archive")
    assert moved.dest_uids == [3]
    assert store.message_uids(alice.id, box) == [1, 3]
    archive = store.lookup_mailbox(alice.id, "Archive").id
    assert [f.flags for f in store.flags_of(alice.id, archive)] == [("\\Seen",)] * 3
    with pytest.raises(store.MailboxNotFound):
        store.copy(alice.id, box, [1], "Nowhere")


def test_quota_refuses_append_and_tracks_usage(alice):
    Account.objects.filter(id=alice.id).update(quota_bytes=len(RAW) * 2)
    store.append(alice.id, "INBOX", RAW)
    store.append(alice.id, "INBOX", RAW)
    with pytest.raises(store.OverQuota):
        store.append(alice.id, "INBOX", RAW)
    assert store.quota(alice.id) == (len(RAW) * 2, len(RAW) * 2)
    box = inbox_id(alice)
    store.expunge(alice.id, box, [1], only_deleted=False)
    assert store.quota(alice.id)[0] == len(RAW)


def test_other_accounts_mailboxes_are_out_of_reach(alice, carol):
    box = inbox_id(alice)
    store.append(alice.id, "INBOX", RAW)
    with pytest.raises(store.MailboxNotFound):
        store.set_flags(carol.id, box, [1], ["\\Seen"])
    with pytest.raises(store.MailboxNotFound):
        store.expunge(carol.id, box, only_deleted=False)
    assert Message.objects.count() == 1


def test_append_if_absent_skips_duplicates(alice):
    assert store.append(alice.id, "INBOX", RAW, if_absent=True) is not None
    assert store.append(alice.id, "INBOX", RAW, if_absent=True) is None
    items = [store.AppendItem(RAW), store.AppendItem(RAW + b"x")]
    assert [r is None for r in store.append_many(alice.id, "INBOX", items, if_absent=True)] == [
        True,
        False,
    ]


def test_recent_is_claimed_by_one_session(alice):
    box = inbox_id(alice)
    store.append(alice.id, "INBOX", RAW)
    assert store.claim_recent(alice.id, box) == 1
    assert store.claim_recent(alice.id, box) == 2


def test_too_large_message_is_refused(alice, settings):
    settings.BUZON_MAX_MESSAGE_SIZE = 10
    with pytest.raises(store.MessageTooLarge):
        store.append(alice.id, "INBOX", RAW)


def test_pop3_wire_size_is_counted_on_arrival(alice):
    """RFC 1939 §11: sizes count CRLF line ends; bare LF is sent as CRLF, bare CR as is."""
    raw = b"Subject: x\nA: b\r\n\r\nline\nline\rend\n"
    appended = store.append(alice.id, "INBOX", raw)
    [meta] = store.fetch_meta(alice.id, appended.mailbox_id, [appended.uid])
    assert meta.crlf_size == len(raw) + 3


def test_set_flags_on_many_scattered_messages_with_mixed_flags(alice):
    """STORE over more UIDs than one IN list holds, not consecutive, whose rows end up in
    several flag sets: every row changes once, all at one new MODSEQ (RFC 7162 §3.1.3),
    whether the rows are read with the mailbox lock in one statement or not."""
    items = [
        store.AppendItem(b"Subject: %d\r\n\r\nbody\r\n" % i, flags=("\\Seen",) if i % 3 else ())
        for i in range(2400)
    ]
    store.append_many(alice.id, "INBOX", items)
    box = store.lookup_mailbox(alice.id, "INBOX")
    before = box.highestmodseq
    odd = list(range(1, 2401, 2))  # 1,200 UIDs: two IN lists
    result = store.set_flags(alice.id, box.id, odd, ["\\Flagged", "work"])
    assert sorted(c.uid for c in result.changed) == odd
    assert {c.modseq for c in result.changed} == {before + 1} == {result.highestmodseq}
    rows = {r.uid: r for r in imapview.flag_rows(alice.id, box.id, list(range(1, 2401)))}
    for uid in range(1, 2401):
        seen = "\\Seen" in rows[uid].flags
        assert seen == bool((uid - 1) % 3), uid
        assert ("\\Flagged" in rows[uid].flags) == (uid % 2 == 1), uid
        assert ("work" in rows[uid].flags) == (uid % 2 == 1), uid
    # A range (one statement with the lock) with nothing to change: no new MODSEQ.
    again = store.set_flags(alice.id, box.id, [1], ["\\Flagged"])
    assert again.changed == [] and again.highestmodseq == before + 1
    assert store.lookup_mailbox(alice.id, "INBOX").highestmodseq == before + 1


def test_expunge_in_one_statement_leaves_what_the_long_way_leaves(alice, carol, monkeypatch):
    """On PostgreSQL EXPUNGE is one statement (sql.expunge_in_one); it must leave the rows
    the step-by-step way leaves: tombstones at one new MODSEQ (RFC 7162 §3.2.10), usage
    down, references released (a blob at zero waits for the collector), other rows alone."""
    from mailhost.store import sql

    def run(account, *, long_way: bool):
        if long_way:
            monkeypatch.setattr(sql, "expunge_in_one", lambda *a, **k: None)
        mine = account.address.encode()
        twice = b"Subject: twice\r\n\r\n%s\r\n" % mine  # one blob, two messages
        bodies = [twice, twice] + [b"Subject: %d\r\n\r\n%s\r\n" % (i, mine) for i in range(4)]
        for raw in bodies:
            store.append(account.id, "INBOX", raw)
        box = store.lookup_mailbox(account.id, "INBOX")
        store.set_flags(account.id, box.id, [1, 3, 4], ["\\Deleted"])
        box = store.lookup_mailbox(account.id, "INBOX")
        gone = store.expunge(account.id, box.id)
        after = store.lookup_mailbox(account.id, "INBOX")
        tombs = sorted(
            ExpungedMessage.objects.filter(mailbox_id=box.id).values_list("uid", "modseq")
        )
        contents = {
            c.id: (c.refcount, c.orphaned_at is not None)
            for c in Content.objects.filter(sha256__in=[blobs.digest(b) for b in bodies])
        }
        monkeypatch.undo()
        return {
            "gone": gone,
            "modseq step": after.highestmodseq - box.highestmodseq,
            "tombs": [(uid, m - after.highestmodseq) for uid, m in tombs],
            "usage": Account.objects.get(id=account.id).used_bytes,
            "expected usage": sum(len(b) for b in bodies) - sum(len(bodies[u - 1]) for u in gone),
            "contents": sorted(contents.values()),
            "left": list(Message.objects.filter(mailbox_id=box.id).values_list("uid", flat=True)),
        }

    quick = run(alice, long_way=False)
    slow = run(carol, long_way=True)
    assert quick == slow
    assert quick["gone"] == [1, 3, 4] and quick["left"] == [2, 5, 6]
    assert quick["modseq step"] == 1 and quick["tombs"] == [(1, 0), (3, 0), (4, 0)]
    assert quick["usage"] == quick["expected usage"]
    # the twice-stored blob keeps one reference; the two expunged singles are orphans
    assert quick["contents"] == [(0, True), (0, True), (1, False), (1, False), (1, False)]
