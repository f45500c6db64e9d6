"""Buzón's data model: the ORM is the one source of truth."""

from .accounts import Account
from .aliases import Alias, AliasTarget
from .domains import Domain
from .leases import Lease
from .mailboxes import SPECIAL_USES, Mailbox
from .messages import Content, ExpungedMessage, Message
from .queue import QueuedMessage, QueuedRecipient

__all__ = [
    "Account",
    "Alias",
    "AliasTarget",
    "Content",
    "Domain",
    "ExpungedMessage",
    "Lease",
    "Mailbox",
    "Message",
    "QueuedMessage",
    "QueuedRecipient",
    "SPECIAL_USES",
]
