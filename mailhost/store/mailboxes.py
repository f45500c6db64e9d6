"""Mailbox operations: create, rename, delete, subscribe, list, status."""

from __future__ import annotations

import time

from django.db.models import Count, F, Q, Sum

from ..models import Account, Mailbox, Message
from ..models.mailboxes import SPECIAL_USES
from . import names, tx
from .errors import (
    AccountNotFound,
    CannotDelete,
    HasChildren,
    InvalidMailboxName,
    MailboxExists,
    MailboxNotFound,
)
from .events import MailboxEvent, publish_on_commit
from .flags import DELETED, SEEN
from .values import MailboxInfo, MailboxStatus

VALID_SPECIAL_USES = {"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash"}


def info(box: Mailbox) -> MailboxInfo:
    return MailboxInfo(
        id=box.id,
        account_id=box.account_id,
        name=box.name,
        uidvalidity=box.uidvalidity,
        uidnext=box.uidnext,
        highestmodseq=box.highestmodseq,
        special_use=box.special_use,
        subscribed=box.subscribed,
    )


def _next_uidvalidity(account_id: int) -> int:
    """A UIDVALIDITY this account never had: time-based, strictly increasing (RFC 3501 §2.3.1.1)."""
    account = Account.objects.select_for_update().filter(id=account_id).first()
    if account is None:
        raise AccountNotFound(f"No account {account_id}")
    value = max(int(time.time()) & 0x7FFFFFFF, account.last_uidvalidity + 1)
    Account.objects.filter(id=account_id).update(last_uidvalidity=value)
    return value


def _create(account_id: int, name: str, special_use: str = "", subscribed: bool = True) -> Mailbox:
    return Mailbox.objects.create(
        account_id=account_id,
        name=name,
        uidvalidity=_next_uidvalidity(account_id),
        special_use=special_use,
        subscribed=subscribed,
    )


def create_defaults(account_id: int) -> None:
    """Give a new account INBOX, Sent, Drafts, Trash, Junk and Archive."""
    with tx.write():
        existing = set(Mailbox.objects.filter(account_id=account_id).values_list("name", flat=True))
        for name, use in SPECIAL_USES.items():
            if name not in existing:
                _create(account_id, name, use)


def create(account_id: int, name: str, special_use: str = "") -> MailboxInfo:
    """Create `name` and any missing parents (RFC 3501 §6.3.3)."""
    name = names.validate(name)
    if special_use and special_use not in VALID_SPECIAL_USES:
        raise ValueError(f"Unknown special use {special_use}")
    with tx.write():
        existing = set(
            Mailbox.objects.filter(
                account_id=account_id, name__in=[*names.parents(name), name]
            ).values_list("name", flat=True)
        )
        if name in existing:
            raise MailboxExists(f"Mailbox {name} already exists")
        for parent in names.parents(name):
            if parent not in existing:
                _create(account_id, parent)
        box = _create(account_id, name, special_use)
        publish_on_commit(MailboxEvent(account_id, box.id, "created"))
    return info(box)


def get(account_id: int, name: str, *, lock: bool = False) -> Mailbox:
    qs = Mailbox.objects.filter(account_id=account_id, name=names.normalize(name))
    if lock:
        qs = qs.select_for_update()
    box = qs.first()
    if box is None:
        raise MailboxNotFound(f"Mailbox {name} does not exist")
    return box


def lock_by_id(mailbox_id: int) -> Mailbox:
    box = Mailbox.objects.select_for_update().filter(id=mailbox_id).first()
    if box is None:
        raise MailboxNotFound("Mailbox does not exist any more")
    return box


def lookup(account_id: int, name: str) -> MailboxInfo:
    return info(get(account_id, name))


def lookup_by_id(mailbox_id: int) -> MailboxInfo:
    box = Mailbox.objects.filter(id=mailbox_id).first()
    if box is None:
        raise MailboxNotFound("Mailbox does not exist any more")
    return info(box)


def delete(account_id: int, name: str) -> None:
    """Delete a mailbox and its messages. INBOX cannot be deleted; nor a parent (like Dovecot)."""
    from .messages import _sub_usage, release_contents

    name = names.validate(name)
    if name == "INBOX":
        raise CannotDelete("INBOX cannot be deleted")
    with tx.write():
        box = get(account_id, name, lock=True)
        prefix = name + names.DELIMITER
        if Mailbox.objects.filter(account_id=account_id, name__startswith=prefix).exists():
            raise HasChildren(f"Mailbox {name} has children; delete them first")
        rows = list(Message.objects.filter(mailbox=box).values_list("content_id", "size"))
        release_contents([c for c, _ in rows])
        _sub_usage(account_id, sum(size for _, size in rows))
        Message.objects.filter(mailbox=box).delete()
        box_id = box.id
        box.delete()
        publish_on_commit(MailboxEvent(account_id, box_id, "deleted"))


def rename(account_id: int, old: str, new: str) -> None:
    """Rename a mailbox and its children (RFC 3501 §6.3.5).

    Renaming INBOX moves its messages into a new mailbox and leaves INBOX empty.
    """
    from .messages import move_all

    old, new = names.validate(old), names.validate(new)
    with tx.write():
        box = get(account_id, old, lock=True)
        if Mailbox.objects.filter(account_id=account_id, name=new).exists():
            raise MailboxExists(f"Mailbox {new} already exists")
        if new.startswith(old + names.DELIMITER):
            raise InvalidMailboxName(f"Cannot move {old} into itself")
        existing = set(
            Mailbox.objects.filter(account_id=account_id, name__in=names.parents(new)).values_list(
                "name", flat=True
            )
        )
        for parent in names.parents(new):
            if parent not in existing:
                _create(account_id, parent)
        if old == "INBOX":
            target = _create(account_id, new)
            move_all(box, target)
            publish_on_commit(MailboxEvent(account_id, target.id, "created"))
            return
        children = list(
            Mailbox.objects.filter(account_id=account_id, name__startswith=old + names.DELIMITER)
        )
        for child in children:
            child.name = new + child.name[len(old) :]
            child.save(update_fields=["name"])
        box.name = new
        box.save(update_fields=["name"])
        publish_on_commit(MailboxEvent(account_id, box.id, "renamed"))


def set_subscribed(account_id: int, name: str, subscribed: bool) -> None:
    """SUBSCRIBE/UNSUBSCRIBE. RFC 3501 §6.3.6 allows subscribing to a name that doesn't exist;
    like Dovecot we only keep subscriptions on existing mailboxes."""
    updated = Mailbox.objects.filter(account_id=account_id, name=names.normalize(name)).update(
        subscribed=subscribed
    )
    if not updated:
        raise MailboxNotFound(f"Mailbox {name} does not exist")


def list_all(account_id: int) -> list[MailboxInfo]:
    return [info(b) for b in Mailbox.objects.filter(account_id=account_id).order_by("name")]


def status(mailbox_id: int) -> MailboxStatus:
    """Counts for STATUS / SELECT in one aggregate query."""
    box = Mailbox.objects.filter(id=mailbox_id).first()
    if box is None:
        raise MailboxNotFound("Mailbox does not exist any more")
    agg = Message.objects.filter(mailbox_id=mailbox_id).aggregate(
        messages=Count("id"),
        seen=Sum(F("flags").bitand(SEEN)),
        deleted=Sum(F("flags").bitand(DELETED)),
        size=Sum("size"),
        recent=Count("id", filter=Q(uid__gte=box.recent_uid)),
    )
    return MailboxStatus(
        mailbox=info(box),
        messages=agg["messages"],
        unseen=agg["messages"] - (agg["seen"] or 0) // SEEN,
        deleted=(agg["deleted"] or 0) // DELETED,
        size=agg["size"] or 0,
        recent=agg["recent"],
    )
