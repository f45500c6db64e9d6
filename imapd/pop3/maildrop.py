"""The maildrop: the INBOX as it was at login, with this session's deletion marks.

RFC 1939 §5: messages are numbered from 1 in the snapshot; numbers never shift in a
session, and a message marked deleted is no longer "there" for any command except RSET.
UIDL is "<UIDVALIDITY>.<UID>" (RFC 1939 §7 allows 1-70 characters from 0x21-0x7E): the
same message has the same value in every session, and it names the IMAP message it is.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from mailhost import store
from mailhost.store import blobs

from . import wire
from .errors import Err

INBOX = "INBOX"


@dataclass(frozen=True)
class Item:
    uid: int
    size: int  # bytes as stored
    sha256: str


@dataclass
class Maildrop:
    account_id: int
    mailbox_id: int
    uidvalidity: int
    items: list[Item]
    deleted: set[int] = field(default_factory=set)  # message numbers, 1-based
    wire_sizes: dict[int, int] = field(default_factory=dict)  # number -> octets on the wire

    def get(self, number: int) -> Item:
        """The message with this number, or -ERR if there is none or it is marked deleted."""
        if not 1 <= number <= len(self.items):
            raise Err(f"No message {number}; there are {len(self.items)}")
        if number in self.deleted:
            raise Err(f"Message {number} is already deleted")
        return self.items[number - 1]

    def numbers(self) -> list[int]:
        """The numbers of the messages not marked deleted, ascending."""
        return [n for n in range(1, len(self.items) + 1) if n not in self.deleted]

    def uidl(self, number: int) -> str:
        return f"{self.uidvalidity}.{self.items[number - 1].uid}"

    def deleted_uids(self) -> list[int]:
        return sorted(self.items[n - 1].uid for n in self.deleted)

    def missing_sizes(self, numbers: list[int]) -> list[int]:
        return [n for n in numbers if n not in self.wire_sizes]


def load(account_id: int) -> Maildrop:
    """Take the snapshot (sync: run it on the DB pool)."""
    uids, status = store.select(account_id, INBOX)
    box = status.mailbox
    metas = store.fetch_meta(account_id, box.id, uids) if uids else []
    items = [Item(m.uid, m.size, m.sha256) for m in metas]
    drop = Maildrop(account_id, box.id, box.uidvalidity, items)
    # Sizes on the wire were counted when each message arrived; only rows older than that
    # column need their blob read (wire_size_of, cached per process).
    drop.wire_sizes.update(
        {n: m.crlf_size for n, m in enumerate(metas, 1) if m.crlf_size is not None}
    )
    return drop


# Wire sizes by content digest: blobs never change, so an entry is right forever.
_SIZE_CACHE_MAX = 100_000
_size_cache: OrderedDict[str, int] = OrderedDict()
_size_lock = threading.Lock()


def wire_size_of(item: Item) -> int:
    """The octets RETR sends for this message before byte-stuffing (sync: reads the blob)."""
    with _size_lock:
        size = _size_cache.get(item.sha256)
        if size is not None:
            _size_cache.move_to_end(item.sha256)
            return size
    try:
        with blobs.open_blob(item.sha256) as f:
            size = wire.wire_size(f)
    except FileNotFoundError:
        return item.size  # removed since login; RETR will say so
    with _size_lock:
        _size_cache[item.sha256] = size
        while len(_size_cache) > _SIZE_CACHE_MAX:
            _size_cache.popitem(last=False)
    return size


def compute_sizes(drop: Maildrop, numbers: list[int]) -> dict[int, int]:
    """Wire sizes for these message numbers (sync: run it off the event loop)."""
    return {n: wire_size_of(drop.items[n - 1]) for n in numbers}
