"""Command values the parser produces: one dataclass per IMAP command, no behaviour.

Mailbox names stay bytes here: how to decode them (modified UTF-7 or UTF-8) depends on the
session (RFC 9051 §5.1, RFC 6855 §3), which the parser does not know.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

MAX_UINT32 = 2**32 - 1


@dataclass(frozen=True)
class SeqSet:
    """A sequence-set (RFC 9051 §9): ranges of numbers, `None` standing for `*`; or `$`."""

    ranges: tuple[tuple[int | None, int | None], ...] = ()
    saved: bool = False  # `$`: the result saved by SEARCH RETURN (SAVE) (RFC 5182)

    def resolve(self, largest: int) -> list[tuple[int, int]]:
        """Return (low, high) ranges with `*` as `largest` (the last seq or UID)."""
        out = []
        for lo, hi in self.ranges:
            a = largest if lo is None else lo
            b = largest if hi is None else hi
            if a > b:
                a, b = b, a
            out.append((a, b))
        return out

    def has_star(self) -> bool:
        return any(lo is None or hi is None for lo, hi in self.ranges)


@dataclass(frozen=True)
class Section:
    """A body section spec (RFC 9051 §6.4.5): part path, then HEADER/TEXT/MIME/... or ''."""

    part: tuple[int, ...] = ()
    text: str = ""  # "" | HEADER | HEADER.FIELDS | HEADER.FIELDS.NOT | TEXT | MIME
    fields: tuple[str, ...] = ()

    def spec(self) -> bytes:
        """The section as echoed in the FETCH response, e.g. `1.2.HEADER.FIELDS (FROM)`."""
        out = ".".join(str(p) for p in self.part)
        if self.text:
            out = f"{out}.{self.text}" if out else self.text
        if self.fields:
            out += " (" + " ".join(self.fields) + ")"
        return out.encode()


@dataclass(frozen=True)
class FetchAtt:
    """One FETCH item; macros ALL/FAST/FULL are expanded by the parser."""

    name: str  # FLAGS UID ENVELOPE INTERNALDATE RFC822.SIZE BODYSTRUCTURE BODY MODSEQ
    # BODY[]  BINARY[]  BINARY.SIZE[]  RFC822  RFC822.HEADER  RFC822.TEXT  SAVEDATE
    section: Section | None = None
    peek: bool = False
    partial: tuple[int, int] | None = None  # <origin.count>


# Search criteria (RFC 9051 §6.4.4). String arguments stay bytes until the charset is known.
@dataclass(frozen=True)
class SearchKey:
    name: str
    args: tuple = ()


@dataclass(frozen=True)
class SearchAnd:
    keys: tuple


@dataclass(frozen=True)
class SearchOr:
    left: object
    right: object


@dataclass(frozen=True)
class SearchNot:
    key: object


@dataclass(frozen=True)
class Command:
    tag: str
    name: ClassVar[str] = ""


@dataclass(frozen=True)
class Capability(Command):
    name: ClassVar[str] = "CAPABILITY"


@dataclass(frozen=True)
class Noop(Command):
    name: ClassVar[str] = "NOOP"


@dataclass(frozen=True)
class Logout(Command):
    name: ClassVar[str] = "LOGOUT"


@dataclass(frozen=True)
class StartTLS(Command):
    name: ClassVar[str] = "STARTTLS"


@dataclass(frozen=True)
class Login(Command):
    name: ClassVar[str] = "LOGIN"
    user: bytes = b""
    password: bytes = b""


@dataclass(frozen=True)
class Authenticate(Command):
    name: ClassVar[str] = "AUTHENTICATE"
    mechanism: str = ""
    initial: bytes | None = None  # SASL-IR (RFC 4959); b"" for "="


@dataclass(frozen=True)
class Enable(Command):
    name: ClassVar[str] = "ENABLE"
    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True)
class Id(Command):
    name: ClassVar[str] = "ID"
    params: tuple[tuple[bytes, bytes | None], ...] | None = None


@dataclass(frozen=True)
class Compress(Command):
    name: ClassVar[str] = "COMPRESS"
    mechanism: str = ""


@dataclass(frozen=True)
class Namespace(Command):
    name: ClassVar[str] = "NAMESPACE"


@dataclass(frozen=True)
class QResync:
    uidvalidity: int
    modseq: int
    known_uids: SeqSet | None = None
    seq_match: tuple[SeqSet, SeqSet] | None = None


@dataclass(frozen=True)
class Select(Command):
    name: ClassVar[str] = "SELECT"
    mailbox: bytes = b""
    readonly: bool = False  # EXAMINE
    condstore: bool = False
    qresync: QResync | None = None


@dataclass(frozen=True)
class Create(Command):
    name: ClassVar[str] = "CREATE"
    mailbox: bytes = b""
    special_use: tuple[str, ...] = ()  # RFC 6154 §3 CREATE-SPECIAL-USE


@dataclass(frozen=True)
class Delete(Command):
    name: ClassVar[str] = "DELETE"
    mailbox: bytes = b""


@dataclass(frozen=True)
class Rename(Command):
    name: ClassVar[str] = "RENAME"
    old: bytes = b""
    new: bytes = b""


@dataclass(frozen=True)
class Subscribe(Command):
    name: ClassVar[str] = "SUBSCRIBE"
    mailbox: bytes = b""
    subscribe: bool = True


@dataclass(frozen=True)
class List(Command):
    name: ClassVar[str] = "LIST"
    reference: bytes = b""
    patterns: tuple[bytes, ...] = ()
    select_opts: frozenset[str] = frozenset()
    return_opts: frozenset[str] = frozenset()
    status_items: tuple[str, ...] = ()
    lsub: bool = False
    extended: bool = False  # selection options or RETURN given (RFC 5258)


@dataclass(frozen=True)
class Status(Command):
    name: ClassVar[str] = "STATUS"
    mailbox: bytes = b""
    items: tuple[str, ...] = ()


@dataclass(frozen=True)
class Append(Command):
    name: ClassVar[str] = "APPEND"
    mailbox: bytes = b""
    flags: tuple[str, ...] = ()
    internaldate: datetime | None = None
    message: bytes = b""
    binary: bool = False  # sent as literal8 (RFC 3516) or UTF8 (RFC 6855 §4)


@dataclass(frozen=True)
class Idle(Command):
    name: ClassVar[str] = "IDLE"


@dataclass(frozen=True)
class Check(Command):
    name: ClassVar[str] = "CHECK"


@dataclass(frozen=True)
class Close(Command):
    name: ClassVar[str] = "CLOSE"


@dataclass(frozen=True)
class Unselect(Command):
    name: ClassVar[str] = "UNSELECT"


@dataclass(frozen=True)
class Expunge(Command):
    name: ClassVar[str] = "EXPUNGE"
    uid: bool = False
    uids: SeqSet | None = None  # UID EXPUNGE (RFC 4315 §2.1)


@dataclass(frozen=True)
class Search(Command):
    name: ClassVar[str] = "SEARCH"
    uid: bool = False
    charset: str | None = None
    criteria: object = None
    returns: tuple[str, ...] | None = None  # ESEARCH RETURN (...) (RFC 4731 / 9051 §6.4.4)


@dataclass(frozen=True)
class Fetch(Command):
    name: ClassVar[str] = "FETCH"
    uid: bool = False
    seqset: SeqSet = field(default_factory=SeqSet)
    items: tuple[FetchAtt, ...] = ()
    changedsince: int | None = None
    vanished: bool = False


@dataclass(frozen=True)
class Store(Command):
    name: ClassVar[str] = "STORE"
    uid: bool = False
    seqset: SeqSet = field(default_factory=SeqSet)
    mode: str = "replace"  # add | remove | replace
    silent: bool = False
    flags: tuple[str, ...] = ()
    unchangedsince: int | None = None


@dataclass(frozen=True)
class Copy(Command):
    name: ClassVar[str] = "COPY"
    uid: bool = False
    seqset: SeqSet = field(default_factory=SeqSet)
    mailbox: bytes = b""


@dataclass(frozen=True)
class Move(Command):
    name: ClassVar[str] = "MOVE"
    uid: bool = False
    seqset: SeqSet = field(default_factory=SeqSet)
    mailbox: bytes = b""


@dataclass(frozen=True)
class Sort(Command):
    name: ClassVar[str] = "SORT"
    uid: bool = False
    keys: tuple[tuple[str, bool], ...] = ()  # (key, reverse)
    charset: str = "UTF-8"
    criteria: object = None


@dataclass(frozen=True)
class Thread(Command):
    name: ClassVar[str] = "THREAD"
    uid: bool = False
    algorithm: str = ""
    charset: str = "UTF-8"
    criteria: object = None


@dataclass(frozen=True)
class GetQuota(Command):
    name: ClassVar[str] = "GETQUOTA"
    root: bytes = b""


@dataclass(frozen=True)
class GetQuotaRoot(Command):
    name: ClassVar[str] = "GETQUOTAROOT"
    mailbox: bytes = b""


@dataclass(frozen=True)
class SetQuota(Command):
    name: ClassVar[str] = "SETQUOTA"
    root: bytes = b""
    limits: tuple[tuple[str, int], ...] = ()
