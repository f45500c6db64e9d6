"""Mailbox operations through the store (RFC 3501 §6.3)."""

import pytest

from mailhost import store
from mailhost.models import Mailbox

pytestmark = pytest.mark.django_db


def names(account):
    return [m.name for m in store.list_mailboxes(account.id)]


def test_new_account_gets_the_standard_folders_with_special_use(alice):
    boxes = {m.name: m.special_use for m in store.list_mailboxes(alice.id)}
    assert boxes == {
        "Archive": "\\Archive",
        "Drafts": "\\Drafts",
        "INBOX": "",
        "Junk": "\\Junk",
        "Sent": "\\Sent",
        "Trash": "\\Trash",
    }


def test_create_makes_missing_parents(alice):
    """RFC 3501 §6.3.3: CREATE a/b/c creates a and a/b when the server needs them."""
    store.create_mailbox(alice.id, "Projects/2026/Q4")
    assert {"Projects", "Projects/2026", "Projects/2026/Q4"} <= set(names(alice))


def test_create_existing_or_invalid_name_fails(alice):
    with pytest.raises(store.MailboxExists):
        store.create_mailbox(alice.id, "Sent")
    with pytest.raises(store.MailboxExists):
        store.create_mailbox(alice.id, "inbox")  # INBOX is case-insensitive (RFC 3501 §5.1)
    for bad in ["", "a//b", "/a", "a/", "a*b", "x%", "bad\x01name"]:
        with pytest.raises(store.InvalidMailboxName):
            store.create_mailbox(alice.id, bad)


def test_uidvalidity_of_a_recreated_mailbox_differs(alice):
    """RFC 3501 §2.3.1.1: a new mailbox with an old name must get a new UIDVALIDITY."""
    first = store.create_mailbox(alice.id, "Temp").uidvalidity
    store.delete_mailbox(alice.id, "Temp")
    second = store.create_mailbox(alice.id, "Temp").uidvalidity
    assert second > first


def test_inbox_cannot_be_deleted_and_parents_need_empty_children(alice):
    with pytest.raises(store.CannotDelete):
        store.delete_mailbox(alice.id, "INBOX")
    store.create_mailbox(alice.id, "A/B")
    with pytest.raises(store.HasChildren):
        store.delete_mailbox(alice.id, "A")
    store.delete_mailbox(alice.id, "A/B")
    store.delete_mailbox(alice.id, "A")
    with pytest.raises(store.MailboxNotFound):
        store.delete_mailbox(alice.id, "A")


def test_rename_moves_children(alice):
    store.create_mailbox(alice.id, "Work/Clients")
    store.rename_mailbox(alice.id, "Work", "Job")
    assert {"Job", "Job/Clients"} <= set(names(alice))
    assert "Work" not in names(alice)


def test_rename_inbox_moves_messages_and_leaves_inbox_empty(alice):
    """RFC 3501 §6.3.5: renaming INBOX moves its messages to the new name."""
    store.append(alice.id, "INBOX", b"Subject: one\r\n\r\nbody\r\n")
    store.rename_mailbox(alice.id, "INBOX", "Old Inbox")
    assert store.select(alice.id, "INBOX")[0] == []
    uids, status = store.select(alice.id, "Old Inbox")
    assert uids == [1] and status.messages == 1


def test_subscriptions(alice):
    store.set_subscribed(alice.id, "Junk", False)
    assert not Mailbox.objects.get(account=alice, name="Junk").subscribed
    with pytest.raises(store.MailboxNotFound):
        store.set_subscribed(alice.id, "Nope", True)
