"""Plain values the store returns: never QuerySets or model instances."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class AccountRef:
    id: int
    address: str
    display_name: str


@dataclass(frozen=True)
class MailboxInfo:
    id: int
    account_id: int
    name: str
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    special_use: str
    subscribed: bool


@dataclass(frozen=True)
class MailboxStatus:
    mailbox: MailboxInfo
    messages: int
    unseen: int
    deleted: int
    size: int
    recent: int = 0


@dataclass(frozen=True)
class Appended:
    mailbox_id: int
    uidvalidity: int
    uid: int
    modseq: int
    flags: tuple[str, ...] = ()
    recent: bool = False  # \Recent claimed for the caller (append_prepared's claim_recent)


@dataclass(frozen=True)
class CopyResult:
    """RFC 4315 COPYUID: source UIDs and the new UIDs in the same order."""

    uidvalidity: int
    source_uids: list[int]
    dest_uids: list[int]


@dataclass(frozen=True)
class MessageFlags:
    uid: int
    modseq: int
    flags: tuple[str, ...]


@dataclass(frozen=True)
class FlagsResult:
    changed: list[MessageFlags]
    # CONDSTORE (RFC 7162 §3.1.3): UIDs not stored because they changed since UNCHANGEDSINCE.
    modified: list[int] = field(default_factory=list)
    highestmodseq: int = 0


@dataclass(frozen=True)
class Changes:
    """What happened in a mailbox since a MODSEQ: for IDLE/NOOP updates and QRESYNC."""

    highestmodseq: int
    uidnext: int
    changed: list[MessageFlags]
    expunged: list[int]


@dataclass(frozen=True)
class MessageMeta:
    """What FETCH needs without opening the blob."""

    uid: int
    modseq: int
    flags: tuple[str, ...]
    internaldate: datetime
    size: int
    sha256: str
    header_end: int
    envelope: bytes
    body: bytes
    bodystructure: bytes
    parts: str
    crlf_size: int | None = None  # POP3 size; None for rows older than the column


@dataclass(frozen=True)
class Delivered:
    account_id: int
    mailbox_id: int
    uid: int


@dataclass(frozen=True)
class RecipientResult:
    """The outcome for one envelope recipient, with the SMTP/LMTP reply it deserves."""

    rcpt: str
    code: int
    enhanced: str
    text: str
    delivered: list[Delivered] = field(default_factory=list)
    forwarded: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    @property
    def reply(self) -> str:
        return f"{self.code} {self.enhanced} {self.text}"
