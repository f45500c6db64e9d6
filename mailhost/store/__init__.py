"""The mail store: THE path for mail. Every front end stores and reads messages here.

Invariants:
- Raw messages are stored byte-exact, fsync'ed before the commit that makes them visible;
  identical bytes are one blob (reference-counted; `gc.collect_orphans` removes the rest).
- UIDs, UIDVALIDITY, UIDNEXT and MODSEQ are assigned only here, in the transaction that
  locks the mailbox row, so any number of processes agree.
- Functions are sync, run one transaction, take and return plain values, and publish one
  "mailbox changed" event on commit (`events`).
"""

from . import blobs, events
from .delivery import (
    DeliveryPlan,
    check_recipient,
    deliver,
    execute_delivery,
    plan_delivery,
    resolve,
    set_forwarder,
)
from .errors import (
    AccountNotFound,
    CannotDelete,
    ForwardingUnavailable,
    HasChildren,
    InvalidMailboxName,
    MailboxExists,
    MailboxNotFound,
    MessageTooLarge,
    NoSuchUser,
    NotLocal,
    OverQuota,
    StoreError,
)
from .gc import collect_orphans
from .mailboxes import create as create_mailbox
from .mailboxes import delete as delete_mailbox
from .mailboxes import list_all as list_mailboxes
from .mailboxes import lookup as lookup_mailbox
from .mailboxes import lookup_by_id as lookup_mailbox_by_id
from .mailboxes import rename as rename_mailbox
from .mailboxes import set_subscribed
from .mailboxes import status as mailbox_status
from .messages import (
    AppendItem,
    append,
    append_many,
    changes_since,
    check_quota,
    claim_recent,
    copy,
    expunge,
    fetch_meta,
    flags_of,
    message_sha,
    message_uids,
    move,
    read_message,
    select,
    set_flags,
)
from .quota import quota

__all__ = [
    "AccountNotFound",
    "AppendItem",
    "DeliveryPlan",
    "CannotDelete",
    "ForwardingUnavailable",
    "HasChildren",
    "InvalidMailboxName",
    "MailboxExists",
    "MailboxNotFound",
    "MessageTooLarge",
    "NoSuchUser",
    "NotLocal",
    "OverQuota",
    "StoreError",
    "append",
    "append_many",
    "blobs",
    "changes_since",
    "check_recipient",
    "check_quota",
    "claim_recent",
    "collect_orphans",
    "copy",
    "create_mailbox",
    "delete_mailbox",
    "deliver",
    "events",
    "execute_delivery",
    "expunge",
    "fetch_meta",
    "flags_of",
    "list_mailboxes",
    "lookup_mailbox",
    "lookup_mailbox_by_id",
    "mailbox_status",
    "message_sha",
    "message_uids",
    "move",
    "plan_delivery",
    "quota",
    "read_message",
    "rename_mailbox",
    "resolve",
    "select",
    "set_flags",
    "set_forwarder",
    "set_subscribed",
]
