"""IMAP command parser: bytes in, Command values out (RFC 3501 §9, RFC 9051 §9).

No sockets, no Django. Reading is the session's job: `CommandBuffer` tells it after each
line whether a literal follows ("need N more bytes", synchronising or not, RFC 7888), and
`parse_command` turns the assembled bytes into a Command. Everything is bounded: line
length and literal size (checked by `CommandBuffer`), the whole command, nesting depth of
parenthesised lists and search keys, and numbers (a sequence number of 0 or above 2^32-1 is
a syntax error, RFC 9051 §9 `nz-number`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

from . import commands as c

MAX_DEPTH = 32  # parenthesised lists and search key nesting
MAX_SEQ_RANGES = 10_000
MAX_SEARCH_KEYS = 1_000
MAX_LITERAL_DIGITS = 12

MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_LITERAL_AT_END = re.compile(rb"(~?)\{(\d{1,%d})([+-]?)\}\r?\n\Z" % MAX_LITERAL_DIGITS)
_TAG = re.compile(rb"[^\x00-\x20\x7f(){%*\"\\+]+")  # tag = 1*<any ASTRING-CHAR except "+">
# ATOM-CHAR: any CHAR except atom-specials ( ) { SP CTL % * " \ ]
_ATOM_CHARS = re.compile(rb"[^\x00-\x20\x7f-\xff(){%*\"\\\]]+")
_ASTRING_CHARS = re.compile(rb"[^\x00-\x20\x7f-\xff(){%*\"\\]+")
_LIST_CHARS = re.compile(rb"[^\x00-\x20\x7f-\xff(){\"\\]+")  # list-char adds % * ]
_NUMBER = re.compile(rb"\d{1,20}")


class ParseError(Exception):
    """The command is malformed: answer BAD (tagged when `tag` is known) and go on."""

    def __init__(self, text: str, tag: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.tag = tag


class CommandTooLarge(ParseError):
    """A literal or the whole command is over its limit."""


@dataclass(frozen=True)
class LiteralRequest:
    """The line just read ends in `{size}` (or `{size+}`, `~{size}`): read `size` bytes next."""

    size: int
    synchronizing: bool  # True: send "+ " first (RFC 9051 §7.5); False: LITERAL+ / LITERAL-
    binary: bool  # literal8 (~{n}, RFC 3516)


def literal_request(line: bytes) -> LiteralRequest | None:
    """Return what literal ends `line`, if any."""
    if not line.endswith(b"}\r\n") and not line.endswith(b"}\n"):
        return None
    m = _LITERAL_AT_END.search(line)
    if m is None:
        return None
    return LiteralRequest(int(m.group(2)), m.group(3) == b"", m.group(1) == b"~")


def tag_of(data: bytes) -> str | None:
    """The tag at the start of a (possibly malformed) command, if it looks like one."""
    m = _TAG.match(data)
    if m is None or m.end() >= len(data) or data[m.end() : m.end() + 1] != b" ":
        return None
    return m.group().decode("ascii", "replace")


class CommandBuffer:
    """Assemble one command from lines and literals, within limits."""

    def __init__(self, *, max_line: int, max_literal: int, max_command: int) -> None:
        self.max_line, self.max_literal, self.max_command = max_line, max_literal, max_command
        self.parts: list[bytes] = []
        self.size = 0

    def add_line(self, line: bytes) -> LiteralRequest | None:
        """Add a line; return the literal it announces, or None when the command is complete.

        Raises CommandTooLarge for a literal over `max_literal` or a command over
        `max_command`; the caller decides whether the client will send the bytes anyway.
        """
        self.parts.append(line)
        self.size += len(line)
        request = literal_request(line)
        if self.size > self.max_command:
            raise CommandTooLarge("Command is too long", tag_of(self.parts[0]))
        if request is not None and (
            request.size > self.max_literal or self.size + request.size > self.max_command
        ):
            raise CommandTooLarge(
                f"Literal of {request.size} octets is over the limit", tag_of(self.parts[0])
            )
        return request

    def add_literal(self, data: bytes) -> None:
        self.parts.append(data)
        self.size += len(data)

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts, self.size = [], 0
        return data


class Reader:
    """A cursor over one assembled command."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.depth = 0
        self.tag: str | None = None

    # -- low level -------------------------------------------------------------------
    def fail(self, text: str) -> ParseError:
        return ParseError(text, self.tag)

    def peek(self, n: int = 1) -> bytes:
        return self.data[self.pos : self.pos + n]

    def at(self, token: bytes) -> bool:
        return self.data[self.pos : self.pos + len(token)].upper() == token.upper()

    def take(self, token: bytes) -> bool:
        if self.at(token):
            self.pos += len(token)
            return True
        return False

    def expect(self, token: bytes, what: str | None = None) -> None:
        if not self.take(token):
            raise self.fail(f"Expected {what or token.decode()}")

    def sp(self) -> None:
        if self.peek() != b" ":
            raise self.fail("Expected a space")
        self.pos += 1

    def at_end(self) -> bool:
        return self.data[self.pos :] in (b"\r\n", b"\n", b"")

    def end(self) -> None:
        if not self.at_end():
            raise self.fail("Unexpected characters at the end of the command")

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail("Nested too deeply")

    def leave(self) -> None:
        self.depth -= 1

    def _match(self, pattern: re.Pattern[bytes], what: str) -> bytes:
        m = pattern.match(self.data, self.pos)
        if m is None:
            raise self.fail(f"Expected {what}")
        self.pos = m.end()
        return m.group()

    # -- tokens ----------------------------------------------------------------------
    def atom(self) -> str:
        return self._match(_ATOM_CHARS, "an atom").decode("ascii")

    def number(self, *, nonzero: bool = False, limit: int = c.MAX_UINT32) -> int:
        value = int(self._match(_NUMBER, "a number"))
        if value > limit or (nonzero and value == 0):
            raise self.fail(f"Number {value} is out of range")
        return value

    def number64(self, *, nonzero: bool = False) -> int:
        return self.number(nonzero=nonzero, limit=2**63 - 1)

    def quoted(self) -> bytes:
        self.expect(b'"')
        out = bytearray()
        data, i, n = self.data, self.pos, len(self.data)
        while True:
            if i >= n:
                raise self.fail("Unterminated quoted string")
            ch = data[i]
            if ch == 0x22:
                self.pos = i + 1
                return bytes(out)
            if ch == 0x5C:
                if i + 1 >= n or data[i + 1] not in (0x22, 0x5C):
                    raise self.fail("Bad escape in quoted string")
                out.append(data[i + 1])
                i += 2
                continue
            if ch in (0x0D, 0x0A, 0x00):
                raise self.fail("CR, LF or NUL in quoted string")
            out.append(ch)
            i += 1

    def literal(self, *, allow_binary: bool = False) -> tuple[bytes, bool]:
        binary = self.take(b"~")
        if binary and not allow_binary:
            raise self.fail("literal8 is not allowed here")
        self.expect(b"{")
        size = int(self._match(re.compile(rb"\d{1,%d}" % MAX_LITERAL_DIGITS), "a literal size"))
        self.take(b"+") or self.take(b"-")
        self.expect(b"}")
        if not (self.take(b"\r\n") or self.take(b"\n")):
            raise self.fail("Expected CRLF after a literal size")
        if self.pos + size > len(self.data):
            raise self.fail("Literal is shorter than announced")
        data = self.data[self.pos : self.pos + size]
        self.pos += size
        # RFC 9051 §4.3 excludes NUL from literals, but a message APPENDed with a NUL in it
        # is stored byte-exact rather than refused (names and flags reject NUL later).
        return data, binary

    def string(self) -> bytes:
        if self.peek() == b'"':
            return self.quoted()
        if self.peek() in (b"{", b"~"):
            return self.literal()[0]
        raise self.fail("Expected a string")

    def astring(self) -> bytes:
        if self.peek() in (b'"', b"{"):
            return self.string()
        return self._match(_ASTRING_CHARS, "an atom or string")

    def nstring(self) -> bytes | None:
        if self.at(b"NIL") and not _ASTRING_CHARS.match(self.data, self.pos + 3):
            self.pos += 3
            return None
        return self.string()

    def mailbox(self) -> bytes:
        return self.astring()

    def list_mailbox(self) -> bytes:
        if self.peek() in (b'"', b"{"):
            return self.string()
        return self._match(_LIST_CHARS, "a mailbox pattern")

    def paren(self, item):
        """Parse `( item *(SP item) )` (possibly empty) and return the items."""
        self.expect(b"(")
        self.enter()
        out = []
        if not self.take(b")"):
            while True:
                out.append(item())
                if self.take(b")"):
                    break
                self.sp()
                if len(out) > MAX_SEARCH_KEYS:
                    raise self.fail("List is too long")
        self.leave()
        return out

    def flag(self) -> str:
        if self.take(b"\\"):
            if self.take(b"*"):
                return "\\*"
            return "\\" + self.atom()
        return self.atom()

    def flag_list(self) -> tuple[str, ...]:
        return tuple(self.paren(self.flag))

    def seqset(self, *, allow_saved: bool = True) -> c.SeqSet:
        if self.take(b"$"):
            if not allow_saved:
                raise self.fail("$ is not allowed here")
            return c.SeqSet(saved=True)
        ranges = []
        while True:
            lo = self._seq_number()
            hi = lo
            if self.take(b":"):
                hi = self._seq_number()
            ranges.append((lo, hi))
            if len(ranges) > MAX_SEQ_RANGES:
                raise self.fail("Sequence set is too long")
            if not self.take(b","):
                break
        return c.SeqSet(tuple(ranges))

    def _seq_number(self) -> int | None:
        if self.take(b"*"):
            return None
        m = _NUMBER.match(self.data, self.pos)
        if m is None:
            raise self.fail("Invalid sequence set")
        value = int(m.group())
        if value == 0 or value > c.MAX_UINT32:
            raise self.fail("Invalid sequence set: numbers are 1 to 4294967295")
        self.pos = m.end()
        return value

    def date(self) -> date:
        quoted = self.take(b'"')
        m = re.compile(rb"(\d{1,2})-([A-Za-z]{3})-(\d{4})").match(self.data, self.pos)
        if m is None:
            raise self.fail("Expected a date like 1-Feb-2024")
        self.pos = m.end()
        if quoted:
            self.expect(b'"')
        try:
            month = MONTHS.index(m.group(2).decode().upper()) + 1
            return date(int(m.group(3)), month, int(m.group(1)))
        except ValueError as e:
            raise self.fail("Invalid date") from e

    def date_time(self) -> datetime:
        text = self.quoted().decode("ascii", "replace")
        m = re.fullmatch(
            r"([ \d]\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)", text
        )
        if m is None:
            raise self.fail('Expected a date-time like "17-Jul-1996 02:44:25 -0700"')
        try:
            month = MONTHS.index(m.group(2).upper()) + 1
            offset = timedelta(hours=int(m.group(8)), minutes=int(m.group(9)))
            if m.group(7) == "-":
                offset = -offset
            value = datetime(
                int(m.group(3)),
                month,
                int(m.group(1).strip()),
                int(m.group(4)),
                int(m.group(5)),
                int(m.group(6)),
                tzinfo=timezone(offset),
            )
        except ValueError as e:
            raise self.fail("Invalid date-time") from e
        return value.astimezone(UTC)


# -- commands ----------------------------------------------------------------------------


# Clients repeat the same commands (`UID FETCH 1:* (FLAGS)`, a folder listing's header
# FETCH, NOOP): the parse of a short command without literals is kept by its text after the
# tag and reused with the new tag. Only these commands (never LOGIN or AUTHENTICATE, whose
# text holds a password); at most PARSE_CACHE entries, emptied when full.
PARSE_CACHE = 2048
_CACHEABLE = (
    c.Fetch, c.Store, c.Search, c.Select, c.Noop, c.Expunge, c.Check, c.Idle, c.Close,
    c.Unselect, c.Status, c.List, c.Sort, c.Thread, c.Capability, c.Namespace,
)  # fmt: skip
_parsed: dict[bytes, c.Command] = {}


def parse_command(data: bytes) -> c.Command:
    """Parse one complete command (lines and literals as assembled by CommandBuffer)."""
    tag = tag_of(data)
    if tag is None:
        raise ParseError("Missing or invalid tag")
    head = tag.encode() + b" "
    cacheable = len(data) <= 512 and b"{" not in data and data.startswith(head)
    rest = data[len(head) :] if cacheable else None
    if rest is not None:
        hit = _parsed.get(rest)
        if hit is not None:
            # A shallow copy with the new tag (its fields are immutable); copy.copy goes
            # through __reduce_ex__, several times slower.
            cmd = object.__new__(type(hit))
            state = cmd.__dict__
            state.update(hit.__dict__)
            state["tag"] = tag
            return cmd
    cmd = _parse_command(data, tag)
    if rest is not None and isinstance(cmd, _CACHEABLE):
        if len(_parsed) >= PARSE_CACHE:
            _parsed.clear()
        _parsed[rest] = cmd
    return cmd


def _parse_command(data: bytes, tag: str) -> c.Command:
    r = Reader(data)
    r.tag = tag
    r.pos = len(tag.encode()) + 1
    name = r.atom().upper()
    uid = False
    if name == "UID":
        r.sp()
        uid = True
        name = r.atom().upper()
        if name not in UID_COMMANDS:
            raise r.fail(f"UID {name} is not a command")
    parse = COMMANDS.get(name)
    if parse is None:
        raise r.fail(f"Unknown command {name[:40]}")
    cmd = parse(r, tag, uid) if name in UID_COMMANDS else parse(r, tag)
    r.end()
    return cmd


def _simple(cls):
    return lambda r, tag: cls(tag)


def _login(r: Reader, tag: str) -> c.Login:
    r.sp()
    user = r.astring()
    r.sp()
    return c.Login(tag, user=user, password=r.astring())


def _authenticate(r: Reader, tag: str) -> c.Authenticate:
    r.sp()
    mech = r.atom().upper()
    initial = None
    if r.take(b" "):
        if r.take(b"="):
            initial = b""
        else:
            initial = r._match(re.compile(rb"[A-Za-z0-9+/]+=*"), "base64 data")
    return c.Authenticate(tag, mechanism=mech, initial=initial)


def _enable(r: Reader, tag: str) -> c.Enable:
    caps = []
    while r.take(b" "):
        caps.append(r.atom().upper())
        if len(caps) > 64:
            raise r.fail("Too many capabilities")
    if not caps:
        raise r.fail("ENABLE needs a capability")
    return c.Enable(tag, capabilities=tuple(caps))


def _id(r: Reader, tag: str) -> c.Id:
    r.sp()
    if r.take(b"NIL"):
        return c.Id(tag, params=None)
    items = r.paren(r.nstring)
    if len(items) % 2 or len(items) > 60:
        raise r.fail("ID takes up to 30 field-value pairs")
    pairs = []
    for i in range(0, len(items), 2):
        if items[i] is None:
            raise r.fail("ID field names are strings")
        pairs.append((items[i], items[i + 1]))
    return c.Id(tag, params=tuple(pairs))


def _compress(r: Reader, tag: str) -> c.Compress:
    r.sp()
    return c.Compress(tag, mechanism=r.atom().upper())


def _select(readonly: bool):
    def parse(r: Reader, tag: str) -> c.Select:
        r.sp()
        mailbox = r.mailbox()
        condstore, qresync = False, None
        if r.take(b" "):
            r.expect(b"(")
            r.enter()
            while True:
                param = r.atom().upper()
                if param == "CONDSTORE":
                    condstore = True
                elif param == "QRESYNC":
                    r.sp()
                    qresync = _qresync(r)
                else:
                    raise r.fail(f"Unknown SELECT parameter {param[:40]}")
                if r.take(b")"):
                    break
                r.sp()
            r.leave()
        return c.Select(
            tag, mailbox=mailbox, readonly=readonly, condstore=condstore, qresync=qresync
        )

    return parse


def _qresync(r: Reader) -> c.QResync:
    """RFC 7162 §3.2.5: (uidvalidity modseq [known-uids [(seq-match uid-match)]])."""
    r.expect(b"(")
    uidvalidity = r.number(nonzero=True)
    r.sp()
    modseq = r.number64(nonzero=True)
    known, match = None, None
    if r.take(b" "):
        if r.peek() != b"(":
            known = r.seqset(allow_saved=False)
            r.take(b" ")
        if r.take(b"("):
            seqs = r.seqset(allow_saved=False)
            r.sp()
            uids = r.seqset(allow_saved=False)
            r.expect(b")")
            match = (seqs, uids)
    r.expect(b")")
    return c.QResync(uidvalidity, modseq, known, match)


def _create(r: Reader, tag: str) -> c.Create:
    r.sp()
    mailbox = r.mailbox()
    uses: tuple[str, ...] = ()
    if r.take(b" "):
        r.expect(b"(")
        r.enter()
        opt = r.atom().upper()
        if opt != "USE":
            raise r.fail(f"Unknown CREATE parameter {opt[:40]}")
        r.sp()
        uses = tuple(r.paren(r.flag))
        r.expect(b")")
        r.leave()
    return c.Create(tag, mailbox=mailbox, special_use=uses)


def _one_mailbox(cls, **extra):
    def parse(r: Reader, tag: str):
        r.sp()
        return cls(tag, mailbox=r.mailbox(), **extra)

    return parse


def _rename(r: Reader, tag: str) -> c.Rename:
    r.sp()
    old = r.mailbox()
    r.sp()
    return c.Rename(tag, old=old, new=r.mailbox())


STATUS_ITEMS = {
    "MESSAGES",
    "RECENT",
    "UIDNEXT",
    "UIDVALIDITY",
    "UNSEEN",
    "DELETED",
    "SIZE",
    "HIGHESTMODSEQ",
    "APPENDLIMIT",
}


def _status_items(r: Reader) -> tuple[str, ...]:
    items = tuple(a.upper() for a in r.paren(r.atom))
    for item in items:
        if item not in STATUS_ITEMS:
            raise r.fail(f"Unknown STATUS item {item[:40]}")
    if not items:
        raise r.fail("STATUS needs at least one item")
    return items


def _status(r: Reader, tag: str) -> c.Status:
    r.sp()
    mailbox = r.mailbox()
    r.sp()
    return c.Status(tag, mailbox=mailbox, items=_status_items(r))


LIST_SELECT = {"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"}
LIST_RETURN = {"SUBSCRIBED", "CHILDREN", "STATUS", "SPECIAL-USE"}


def _list(lsub: bool):
    def parse(r: Reader, tag: str) -> c.List:
        r.sp()
        select: set[str] = set()
        extended = False
        if not lsub and r.peek() == b"(":
            extended = True
            for opt in r.paren(r.atom):
                opt = opt.upper()
                if opt not in LIST_SELECT:
                    raise r.fail(f"Unknown LIST selection option {opt[:40]}")
                select.add(opt)
            r.sp()
            if "RECURSIVEMATCH" in select and len(select) == 1:
                raise r.fail("RECURSIVEMATCH needs another selection option")  # RFC 5258 §3
        reference = r.mailbox()
        r.sp()
        if not lsub and r.peek() == b"(":
            patterns = tuple(r.paren(r.list_mailbox))
            extended = True
        else:
            patterns = (r.list_mailbox(),)
        returns: set[str] = set()
        status_items: tuple[str, ...] = ()
        if not lsub and r.take(b" "):
            r.expect(b"RETURN")
            r.sp()
            extended = True
            r.expect(b"(")
            r.enter()
            if not r.take(b")"):
                while True:
                    opt = r.atom().upper()
                    if opt not in LIST_RETURN:
                        raise r.fail(f"Unknown LIST return option {opt[:40]}")
                    returns.add(opt)
                    if opt == "STATUS":
                        r.sp()
                        status_items = _status_items(r)
                    if r.take(b")"):
                        break
                    r.sp()
            r.leave()
        return c.List(
            tag,
            reference=reference,
            patterns=patterns,
            select_opts=frozenset(select),
            return_opts=frozenset(returns),
            status_items=status_items,
            lsub=lsub,
            extended=extended,
        )

    return parse


def _append(r: Reader, tag: str) -> c.Append:
    r.sp()
    mailbox = r.mailbox()
    r.sp()
    flags: tuple[str, ...] = ()
    when = None
    if r.peek() == b"(":
        flags = r.flag_list()
        r.sp()
    if r.peek() == b'"':
        when = r.date_time()
        r.sp()
    if r.take(b"UTF8 "):  # RFC 6855 §4: APPEND ... UTF8 (~{n}...)
        r.expect(b"(")
        message, _ = r.literal(allow_binary=True)
        r.expect(b")")
        return c.Append(
            tag, mailbox=mailbox, flags=flags, internaldate=when, message=message, binary=True
        )
    if r.peek() not in (b"{", b"~"):
        raise r.fail("APPEND needs the message as a literal")
    message, binary = r.literal(allow_binary=True)
    return c.Append(
        tag, mailbox=mailbox, flags=flags, internaldate=when, message=message, binary=binary
    )


def _expunge(r: Reader, tag: str, uid: bool) -> c.Expunge:
    uids = None
    if uid:
        r.sp()
        uids = r.seqset()
    return c.Expunge(tag, uid=uid, uids=uids)


# -- SEARCH ------------------------------------------------------------------------------

_NO_ARG = {
    "ALL",
    "ANSWERED",
    "DELETED",
    "DRAFT",
    "FLAGGED",
    "NEW",
    "OLD",
    "RECENT",
    "SEEN",
    "UNANSWERED",
    "UNDELETED",
    "UNDRAFT",
    "UNFLAGGED",
    "UNSEEN",
}
_STRING_ARG = {"BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"}
_DATE_ARG = {"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"}
_NUMBER_ARG = {"LARGER", "SMALLER"}
_FLAG_ARG = {"KEYWORD", "UNKEYWORD"}
_SEQ_START = re.compile(rb"[\d*$]")


class _SearchParser:
    def __init__(self, r: Reader) -> None:
        self.r = r
        self.count = 0

    def keys(self) -> object:
        """One or more keys separated by spaces, to the end of the command (implicit AND)."""
        out = [self.key()]
        while self.r.take(b" "):
            out.append(self.key())
        return out[0] if len(out) == 1 else c.SearchAnd(tuple(out))

    def key(self) -> object:
        r = self.r
        self.count += 1
        if self.count > MAX_SEARCH_KEYS:
            raise r.fail("Too many search keys")
        if r.peek() == b"(":
            r.enter()
            r.pos += 1
            out = [self.key()]
            while not r.take(b")"):
                r.sp()
                out.append(self.key())
            r.leave()
            return out[0] if len(out) == 1 else c.SearchAnd(tuple(out))
        if _SEQ_START.match(r.peek()):
            return c.SearchKey("SEQSET", (r.seqset(),))
        name = r.atom().upper()
        if name in _NO_ARG:
            return c.SearchKey(name)
        if name == "NOT":
            r.sp()
            r.enter()
            inner = self.key()
            r.leave()
            return c.SearchNot(inner)
        if name == "OR":
            r.sp()
            r.enter()
            left = self.key()
            r.sp()
            right = self.key()
            r.leave()
            return c.SearchOr(left, right)
        r.sp()
        if name in _STRING_ARG:
            return c.SearchKey(name, (r.astring(),))
        if name in _DATE_ARG:
            return c.SearchKey(name, (r.date(),))
        if name in _NUMBER_ARG:
            return c.SearchKey(name, (r.number64(),))
        if name in _FLAG_ARG:
            return c.SearchKey(name, (r.flag(),))
        if name == "HEADER":
            field = r.astring()
            r.sp()
            return c.SearchKey(name, (field, r.astring()))
        if name == "UID":
            return c.SearchKey(name, (r.seqset(),))
        if name == "MODSEQ":  # RFC 7162 §3.1.5: MODSEQ [entry-name entry-type] modseq
            if r.peek() == b'"':
                r.quoted()
                r.sp()
                r.atom()
                r.sp()
            return c.SearchKey(name, (r.number64(),))
        raise r.fail(f"Unknown search key {name[:40]}")


SEARCH_RETURN = {"MIN", "MAX", "ALL", "COUNT", "SAVE"}


def _charset(r: Reader) -> str:
    return r.astring().decode("ascii", "replace").upper()


def _search(r: Reader, tag: str, uid: bool) -> c.Search:
    r.sp()
    returns = None
    if r.take(b"RETURN "):
        returns = tuple(a.upper() for a in r.paren(r.atom))
        for opt in returns:
            if opt not in SEARCH_RETURN:
                raise r.fail(f"Unknown SEARCH return option {opt[:40]}")
        r.sp()
    charset = None
    if r.take(b"CHARSET "):
        charset = _charset(r)
        r.sp()
    return c.Search(
        tag, uid=uid, charset=charset, criteria=_SearchParser(r).keys(), returns=returns
    )


SORT_KEYS = {"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"}


def _sort(r: Reader, tag: str, uid: bool) -> c.Sort:
    r.sp()
    raw = [a.upper() for a in r.paren(r.atom)]
    keys, reverse = [], False
    for word in raw:
        if word == "REVERSE":
            if reverse:
                raise r.fail("REVERSE twice")
            reverse = True
            continue
        if word not in SORT_KEYS:
            raise r.fail(f"Unknown sort key {word[:40]}")
        keys.append((word, reverse))
        reverse = False
    if reverse or not keys:
        raise r.fail("Sort criteria must end with a key")
    r.sp()
    charset = _charset(r)
    r.sp()
    return c.Sort(tag, uid=uid, keys=tuple(keys), charset=charset, criteria=_SearchParser(r).keys())


def _thread(r: Reader, tag: str, uid: bool) -> c.Thread:
    r.sp()
    algorithm = r.atom().upper()
    r.sp()
    charset = _charset(r)
    r.sp()
    return c.Thread(
        tag, uid=uid, algorithm=algorithm, charset=charset, criteria=_SearchParser(r).keys()
    )


# -- FETCH -------------------------------------------------------------------------------

_MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
_SIMPLE_ATTS = {
    "ENVELOPE",
    "FLAGS",
    "INTERNALDATE",
    "RFC822",
    "RFC822.HEADER",
    "RFC822.SIZE",
    "RFC822.TEXT",
    "BODYSTRUCTURE",
    "UID",
    "MODSEQ",
    "BODY",
}
_FETCH_NAME = re.compile(rb"[A-Za-z0-9.]+")


def _section(r: Reader, binary: bool) -> c.Section:
    r.expect(b"[")
    part: list[int] = []
    text = ""
    fields: tuple[str, ...] = ()
    while True:
        m = re.compile(rb"\d+").match(r.data, r.pos)
        if m is None:
            break
        value = int(m.group())
        if value == 0 or value > c.MAX_UINT32:
            raise r.fail("Section part numbers start at 1")
        part.append(value)
        r.pos = m.end()
        if len(part) > MAX_DEPTH:
            raise r.fail("Section nested too deeply")
        if not r.take(b"."):
            break
        if not re.compile(rb"\d").match(r.data, r.pos):
            break
    if r.peek() != b"]":
        if binary:
            raise r.fail("BINARY takes part numbers only")
        word = r._match(re.compile(rb"[A-Za-z.]+"), "a section name").decode().upper()
        if word in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
            r.sp()
            names = r.paren(r.astring)
            if not names:
                raise r.fail("HEADER.FIELDS needs at least one field name")
            fields = tuple(n.decode("ascii", "replace").upper() for n in names)
        elif word == "MIME":
            if not part:
                raise r.fail("MIME needs a part number")
        elif word not in ("HEADER", "TEXT"):
            raise r.fail(f"Unknown section {word[:40]}")
        text = word
    r.expect(b"]")
    return c.Section(tuple(part), text, fields)


def _partial(r: Reader) -> tuple[int, int] | None:
    if not r.take(b"<"):
        return None
    start = r.number()
    r.expect(b".")
    count = r.number(nonzero=True)
    r.expect(b">")
    return (start, count)


def _fetch_att(r: Reader) -> list[c.FetchAtt]:
    name = r._match(_FETCH_NAME, "a fetch item").decode().upper()
    if name in _MACROS:
        raise r.fail(f"{name} cannot be used inside a list")
    if name in ("BODY", "BODY.PEEK") and r.peek() == b"[":
        section = _section(r, False)
        return [c.FetchAtt("BODY[]", section, name == "BODY.PEEK", _partial(r))]
    if name in ("BINARY", "BINARY.PEEK", "BINARY.SIZE"):
        section = _section(r, True)
        if name == "BINARY.SIZE":
            return [c.FetchAtt("BINARY.SIZE", section)]
        return [c.FetchAtt("BINARY[]", section, name == "BINARY.PEEK", _partial(r))]
    if name in _SIMPLE_ATTS:
        return [c.FetchAtt(name)]
    raise r.fail(f"Unknown fetch item {name[:40]}")


def _fetch(r: Reader, tag: str, uid: bool) -> c.Fetch:
    r.sp()
    seqset = r.seqset()
    r.sp()
    items: list[c.FetchAtt] = []
    if r.peek() == b"(":
        for group in r.paren(lambda: _fetch_att(r)):
            items.extend(group)
    else:
        m = _FETCH_NAME.match(r.data, r.pos)
        if m and m.group().decode().upper() in _MACROS:
            r.pos = m.end()
            items = [c.FetchAtt(n) for n in _MACROS[m.group().decode().upper()]]
        else:
            items = _fetch_att(r)
    changedsince, vanished = None, False
    if r.take(b" "):
        r.expect(b"(")
        r.enter()
        while True:
            mod = r.atom().upper()
            if mod == "CHANGEDSINCE":
                r.sp()
                changedsince = r.number64()
            elif mod == "VANISHED":
                vanished = True
            else:
                raise r.fail(f"Unknown FETCH modifier {mod[:40]}")
            if r.take(b")"):
                break
            r.sp()
        r.leave()
        if vanished and (changedsince is None or not uid):
            raise r.fail("VANISHED needs UID FETCH with CHANGEDSINCE")  # RFC 7162 §3.2.6
    if uid and not any(i.name == "UID" for i in items):
        items.insert(0, c.FetchAtt("UID"))
    return c.Fetch(
        tag,
        uid=uid,
        seqset=seqset,
        items=tuple(items),
        changedsince=changedsince,
        vanished=vanished,
    )


def _store(r: Reader, tag: str, uid: bool) -> c.Store:
    r.sp()
    seqset = r.seqset()
    r.sp()
    unchangedsince = None
    if r.take(b"("):
        r.enter()
        mod = r.atom().upper()
        if mod != "UNCHANGEDSINCE":
            raise r.fail(f"Unknown STORE modifier {mod[:40]}")
        r.sp()
        unchangedsince = r.number64()
        r.expect(b")")
        r.leave()
        r.sp()
    mode = "replace"
    if r.take(b"+"):
        mode = "add"
    elif r.take(b"-"):
        mode = "remove"
    word = r.atom().upper()
    if word not in ("FLAGS", "FLAGS.SILENT"):
        raise r.fail("Expected FLAGS or FLAGS.SILENT")
    r.sp()
    if r.peek() == b"(":
        flags = r.flag_list()
    else:
        flags_list = [r.flag()]
        while r.take(b" "):
            flags_list.append(r.flag())
        flags = tuple(flags_list)
    return c.Store(
        tag,
        uid=uid,
        seqset=seqset,
        mode=mode,
        silent=word.endswith(".SILENT"),
        flags=flags,
        unchangedsince=unchangedsince,
    )


def _copy(cls):
    def parse(r: Reader, tag: str, uid: bool):
        r.sp()
        seqset = r.seqset()
        r.sp()
        return cls(tag, uid=uid, seqset=seqset, mailbox=r.mailbox())

    return parse


def _getquota(r: Reader, tag: str) -> c.GetQuota:
    r.sp()
    return c.GetQuota(tag, root=r.astring())


def _setquota(r: Reader, tag: str) -> c.SetQuota:
    r.sp()
    root = r.astring()
    r.sp()
    words = r.paren(lambda: r.atom() if not r.peek().isdigit() else str(r.number64()))
    if len(words) % 2:
        raise r.fail("SETQUOTA takes resource-limit pairs")
    limits = []
    for i in range(0, len(words), 2):
        if not words[i + 1].isdigit():
            raise r.fail("Quota limits are numbers")
        limits.append((words[i].upper(), int(words[i + 1])))
    return c.SetQuota(tag, root=root, limits=tuple(limits))


UID_COMMANDS = {"FETCH", "STORE", "COPY", "MOVE", "SEARCH", "EXPUNGE", "SORT", "THREAD"}
COMMANDS = {
    "CAPABILITY": _simple(c.Capability),
    "NOOP": _simple(c.Noop),
    "LOGOUT": _simple(c.Logout),
    "STARTTLS": _simple(c.StartTLS),
    "LOGIN": _login,
    "AUTHENTICATE": _authenticate,
    "ENABLE": _enable,
    "ID": _id,
    "COMPRESS": _compress,
    "NAMESPACE": _simple(c.Namespace),
    "SELECT": _select(False),
    "EXAMINE": _select(True),
    "CREATE": _create,
    "DELETE": _one_mailbox(c.Delete),
    "RENAME": _rename,
    "SUBSCRIBE": _one_mailbox(c.Subscribe),
    "UNSUBSCRIBE": _one_mailbox(c.Subscribe, subscribe=False),
    "LIST": _list(False),
    "LSUB": _list(True),
    "STATUS": _status,
    "APPEND": _append,
    "IDLE": _simple(c.Idle),
    "CHECK": _simple(c.Check),
    "CLOSE": _simple(c.Close),
    "UNSELECT": _simple(c.Unselect),
    "EXPUNGE": _expunge,
    "SEARCH": _search,
    "FETCH": _fetch,
    "STORE": _store,
    "COPY": _copy(c.Copy),
    "MOVE": _copy(c.Move),
    "SORT": _sort,
    "THREAD": _thread,
    "GETQUOTA": _getquota,
    "GETQUOTAROOT": _one_mailbox(c.GetQuotaRoot),
    "SETQUOTA": _setquota,
}
