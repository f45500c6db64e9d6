"""IMAP SEARCH (RFC 9051 §6.4.4, RFC 3501 §6.4.4, RFC 7162 MODSEQ) and the rows for SORT/THREAD.

Sync code: the IMAP server runs it in the DB thread pool through `run_db`, or inline when
`is_cheap` says the criteria need one plain SQL statement only.

How a search runs:

1. The criteria tree is checked first (depth <= MAX_DEPTH, at most MAX_NODES nodes, known
   keys with well-typed arguments, strings of at most MAX_STRING characters), iteratively,
   so a hostile tree costs nothing before it is refused.
2. Every node is compiled into two SQL conditions: `upper` (every match satisfies it) and
   `lower` (everything satisfying it matches). Flags, keywords, sizes, dates, UID sets,
   MODSEQ and the envelope columns are exact (upper == lower). BODY/TEXT/HEADER need the
   blob and are (all, none); SENT* keys are exact except within a day of the boundary,
   because the Content row keeps the Date: in UTC and RFC 3501 wants the header's own
   date; UID sets too scattered for a few ranges are checked in Python.
3. One query returns the UIDs in `lower`. Only when the tree is inexact does a second query
   fetch the rows in `upper AND NOT lower`, with every exact subtree annotated as a
   boolean, and the tree is evaluated in Python on them, opening blobs only when a key
   still needs them (cheap children first, short-circuited).
4. Fast path: when every key is exact in SQL alone (the common `UNSEEN`, `SUBJECT x`),
   the ORM is skipped: the same conditions, written once against `_Leaves`, become one
   hand-written statement that also checks the mailbox's owner (`_fast_search`), because
   building and compiling the ORM query costs more CPU than running it.

Bounds on blob work (RFC 9051 §6.4.4 lets servers skip non-text parts, and does not ask
for unbounded work): per message, at most MAX_HEADER_BYTES of header and
MAX_MESSAGE_SCAN_BYTES of text parts are read, the rest is not searched; per search,
BUZON_SEARCH_MAX_BYTES bytes and BUZON_SEARCH_MAX_SECONDS seconds, after which the search
fails with SearchError("LIMIT") rather than answer with a silently partial result.

Case-insensitivity: ASCII needles use `icontains` (LIKE on SQLite, UPPER() LIKE UPPER() on
PostgreSQL), which RFC 9051 asks for. SQLite's LIKE folds ASCII only, so a needle with
non-ASCII characters is matched there with GLOB and a character class per cased letter
([Оо][Тт]...), i.e. simple one-to-one case mapping; PostgreSQL folds with the database's
locale. Text from blobs is compared after str.lower() on both sides.
"""

from __future__ import annotations

import codecs
import datetime as dt
import json
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connection
from django.db.models import BooleanField, Case, F, Func, Max, Q, Value, When
from django.utils import timezone

from ..mail.parse import decode_header_value, decode_part_body, header_fields
from ..models import Content, Mailbox, Message
from . import blobs
from . import flags as flagbits
from .cursors import cursor as raw_cursor
from .errors import MailboxNotFound

if TYPE_CHECKING:
    from imapd.imap.threading import SortRow, ThreadRow

__all__ = [
    "SUPPORTED_CHARSETS",
    "And",
    "Key",
    "Not",
    "Or",
    "SearchError",
    "is_cheap",
    "max_modseq",
    "search",
    "sort_rows",
    "thread_rows",
]

SUPPORTED_CHARSETS = ("UTF-8", "US-ASCII")
#: Deepest nesting of And/Or/Not accepted (ARCHITECTURE.md: recursion in SEARCH is bounded).
MAX_DEPTH = 100
#: Most nodes in one criteria tree; keeps the SQL well under SQLite's expression depth (1000).
MAX_NODES = 500
#: Longest search string, in characters.
MAX_STRING = 4096
#: Per message: bytes of header read for HEADER/TEXT, and bytes of text parts for BODY/TEXT.
MAX_HEADER_BYTES = 256 * 1024
MAX_MESSAGE_SCAN_BYTES = 4 * 1024 * 1024
#: A UID set with more ranges than this (after merging gaps that hold no message) is checked
#: in Python instead of becoming SQL.
MAX_SQL_RANGES = 64
#: Row batches for the Python pass and for UID lookups (SQLite caps query parameters).
BATCH = 500

_FLAG_KEYS = {
    "ANSWERED": (flagbits.ANSWERED, True),
    "DELETED": (flagbits.DELETED, True),
    "DRAFT": (flagbits.DRAFT, True),
    "FLAGGED": (flagbits.FLAGGED, True),
    "SEEN": (flagbits.SEEN, True),
    "UNANSWERED": (flagbits.ANSWERED, False),
    "UNDELETED": (flagbits.DELETED, False),
    "UNDRAFT": (flagbits.DRAFT, False),
    "UNFLAGGED": (flagbits.FLAGGED, False),
    "UNSEEN": (flagbits.SEEN, False),
}
_FLAG_ALIAS = {bit: f"search_flag_{bit}" for bit, _ in _FLAG_KEYS.values()}
_NO_ARGS = {"ALL", "NEW", "OLD", "RECENT", *_FLAG_KEYS}
_STRING_KEYS = {"BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"}
_DATE_KEYS = {"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"}
_NUMBER_KEYS = {"LARGER", "SMALLER", "MODSEQ"}
_SET_KEYS = {"UID", "SEQSET"}
_KEYWORD_KEYS = {"KEYWORD", "UNKEYWORD"}
KEYS = frozenset(
    _NO_ARGS | _STRING_KEYS | _DATE_KEYS | _NUMBER_KEYS | _SET_KEYS | _KEYWORD_KEYS | {"HEADER"}
)
#: Keys that need the blob (BODY, TEXT, HEADER) or may need it (SENT*, near the boundary).
_BLOB_KEYS = frozenset({"BODY", "TEXT", "HEADER", "SENTBEFORE", "SENTON", "SENTSINCE"})
#: Off switch for the plain-SQL path (tests compare it with the general one).
_FAST_PATH = True


# Criteria -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """One search key, named as in RFC 9051 §6.4.4 (upper case). UID and SEQSET take a
    frozenset of UIDs: the caller maps sequence numbers, `*` and `$` to UIDs."""

    name: str
    args: tuple = ()


@dataclass(frozen=True)
class And:
    keys: tuple


@dataclass(frozen=True)
class Or:
    left: object
    right: object


@dataclass(frozen=True)
class Not:
    key: object


class SearchError(Exception):
    """A search that cannot run. `code` is the IMAP response code to answer NO with:
    "BADCHARSET" (then `charsets` lists what we support, RFC 9051 §7.1) or "LIMIT"
    (RFC 5530); "BAD" means the criteria themselves are malformed (answer BAD)."""

    def __init__(self, code: str, message: str = "", *, charsets: tuple[str, ...] = ()) -> None:
        super().__init__(message or code)
        self.code = code
        self.charsets = charsets


# Public API ---------------------------------------------------------------------------------


def search(
    account_id: int,
    mailbox_id: int,
    criteria,
    *,
    recent_from_uid: int | None = None,
    charset: str | None = "UTF-8",
) -> list[int]:
    """Return the UIDs (ascending) of the messages in the mailbox that match `criteria`.

    `recent_from_uid`: UIDs at or above it are \\Recent for this session (RFC 3501 §2.3.2);
    None means no message is (IMAP4rev2 has no \\Recent).
    """
    if charset is None:  # RFC 9051 §6.4.4: no CHARSET means UTF-8
        charset = "UTF-8"
    if isinstance(charset, bytes):
        charset = charset.decode("ascii", "replace")
    if not isinstance(charset, str) or charset.strip().upper() not in SUPPORTED_CHARSETS:
        raise SearchError(
            "BADCHARSET", f"Unsupported charset {charset!r}", charsets=SUPPORTED_CHARSETS
        )
    if isinstance(criteria, list | tuple):
        criteria = And(tuple(criteria))
    _check_tree(criteria)
    if _FAST_PATH:
        found = _fast_search(account_id, mailbox_id, criteria, recent_from_uid)
        if found is not None:
            return found
    _owned(account_id, mailbox_id)
    return _Search(mailbox_id, recent_from_uid).run(criteria)


def is_cheap(criteria) -> bool:
    """Whether search() answers `criteria` with one plain SQL statement and no blob work:
    every key is exact in SQL (flags, keywords, sizes, internal dates, MODSEQ, envelope
    strings, UID sets of at most MAX_SQL_RANGES ranges). Touches no database, so the IMAP
    server can ask on its event loop; False for criteria that search() refuses."""
    if isinstance(criteria, list | tuple):
        criteria = And(tuple(criteria))
    try:
        _check_tree(criteria)
    except SearchError:
        return False
    stack = [criteria]
    while stack:
        node = stack.pop()
        if isinstance(node, Key):
            if node.name in _BLOB_KEYS:
                return False
            if node.name in _SET_KEYS and len(_uid_runs(node.args[0])) > MAX_SQL_RANGES:
                return False
        elif isinstance(node, And):
            stack.extend(node.keys)
        elif isinstance(node, Or):
            stack.extend((node.left, node.right))
        else:
            stack.append(node.key)
    return True


def max_modseq(account_id: int, mailbox_id: int, uids: list[int]) -> int:
    """Return the highest MODSEQ among `uids` (RFC 7162 §3.1.6), 0 for none."""
    _owned(account_id, mailbox_id)
    wanted = set(uids)
    if not wanted:
        return 0
    base = Message.objects.filter(mailbox_id=mailbox_id)
    if len(wanted) <= BATCH * 4:
        best = 0
        ordered = sorted(wanted)
        for i in range(0, len(ordered), BATCH):
            chunk = ordered[i : i + BATCH]
            value = base.filter(uid__in=chunk).aggregate(m=Max("modseq"))["m"]
            best = max(best, value or 0)
        return best
    rows = base.filter(uid__gte=min(wanted), uid__lte=max(wanted)).values_list("uid", "modseq")
    return max((m for u, m in rows.iterator(chunk_size=5000) if u in wanted), default=0)


def sort_rows(account_id: int, mailbox_id: int, uids: Iterable[int]) -> list[SortRow]:
    """Return what SORT (RFC 5256, RFC 5957) needs for these UIDs, in UID order."""
    from imapd.imap.threading import SortRow, gc_paused  # late: imapd.imap imports the store

    fields = (
        "uid",
        "internaldate",
        "size",
        "content__date",
        "content__base_subject",
        "content__from_addr",
        "content__from_display",
        "content__to",
        "content__cc",
    )
    out = []
    with gc_paused():  # 100,000s of small objects: see threading.gc_paused
        rows = _rows(account_id, mailbox_id, uids, fields)
        for uid, arrival, size, date, base, from_addr, from_display, to, cc in rows:
            to_name, to_spec = first_address(to)
            _, cc_spec = first_address(cc)
            out.append(
                SortRow(
                    uid=uid,
                    arrival=arrival,
                    cc=_local_part(cc_spec),
                    date=date,
                    from_=_local_part(from_addr),
                    size=size,
                    subject=base,
                    to=_local_part(to_spec),
                    display_from=from_display,
                    display_to=to_name or to_spec,
                )
            )
    return out


def thread_rows(account_id: int, mailbox_id: int, uids: Iterable[int]) -> list[ThreadRow]:
    """Return what THREAD (RFC 5256) needs for these UIDs, in UID order."""
    from imapd.imap.threading import ThreadRow, gc_paused
    from imapd.imap.threading import base_subject as split_base_subject

    fields = (
        "uid",
        "internaldate",
        "content__date",
        "content__subject",
        "content__base_subject",
        "content__message_id",
        "content__in_reply_to",
        "content__references",
    )
    out = []
    with gc_paused():
        rows = _rows(account_id, mailbox_id, uids, fields)
        for uid, arrival, date, subject, base, message_id, in_reply_to, references in rows:
            # Nothing stripped from the subject (the common case) means not a reply or forward.
            is_reply = subject != base and split_base_subject(subject)[1]
            out.append(
                ThreadRow(
                    uid=uid,
                    message_id=message_id,
                    in_reply_to=in_reply_to,
                    references=references.split(),
                    base_subject=base,
                    date=date,
                    arrival=arrival,
                    subject_is_reply=is_reply,
                )
            )
    return out


# Address columns ----------------------------------------------------------------------------

# Content.to/cc hold "Name <addr-spec>, addr-spec, ..." (mail.parse._address_display): the
# decoded display form. A bare addr-spec first, else a name (which may hold ", ") and <spec>.
_FIRST_BARE = re.compile(r'\s*([^\s,<>"]+@[^\s,<>"]+)\s*(?:,|$)')
_FIRST_NAMED = re.compile(r"\s*(.*?)\s*<([^<>]*)>\s*(?:,|$)", re.S)


def first_address(display: str) -> tuple[str, str]:
    """Return (display name, addr-spec) of the first address in a Content.to/cc value.

    A heuristic on the decoded display text: a display name containing both "@" and ", "
    before the real address can mislead it. Exact answers need the first address stored
    in its own column (see the report accompanying this module).
    """
    if not display:
        return "", ""
    display = display[:2000]  # the first address is near the start; bound the regex work
    m = _FIRST_BARE.match(display)
    if m:
        return "", m.group(1)
    m = _FIRST_NAMED.match(display)
    if m:
        return m.group(1).strip('" '), m.group(2).strip()
    first = display.split(",", 1)[0].strip()
    return "", first


def _local_part(addr_spec: str) -> str:
    """RFC 5256 §3 sorts FROM/TO/CC by the IMAP addr-mailbox, the local part."""
    local = addr_spec.rpartition("@")[0] if "@" in addr_spec else addr_spec
    if len(local) >= 2 and local.startswith('"') and local.endswith('"'):
        local = local[1:-1]
    return local


# Plumbing -----------------------------------------------------------------------------------


def _owned(account_id: int, mailbox_id: int) -> None:
    if not Mailbox.objects.filter(id=mailbox_id, account_id=account_id).exists():
        raise MailboxNotFound("Mailbox does not exist any more")


def _rows(account_id: int, mailbox_id: int, uids: Iterable[int], fields: tuple) -> list[tuple]:
    """values_list(*fields) for these UIDs, in UID order: IN batches for a few UIDs, one
    range scan filtered in Python for many (no giant IN lists)."""
    _owned(account_id, mailbox_id)
    wanted = set(uids)
    if not wanted:
        return []
    base = Message.objects.filter(mailbox_id=mailbox_id).order_by("uid")
    out: list[tuple] = []
    if len(wanted) <= BATCH * 4:
        ordered = sorted(wanted)
        for i in range(0, len(ordered), BATCH):
            out.extend(base.filter(uid__in=ordered[i : i + BATCH]).values_list(*fields))
        return out
    rows = base.filter(uid__gte=min(wanted), uid__lte=max(wanted)).values_list(*fields)
    return [r for r in rows.iterator(chunk_size=5000) if r[0] in wanted]


def _check_tree(criteria) -> None:
    """Validate the whole tree iteratively before any recursion or SQL (bounded work)."""
    stack = [(criteria, 1)]
    nodes = 0
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            raise SearchError("LIMIT", f"Search criteria nest deeper than {MAX_DEPTH}")
        if nodes > MAX_NODES:
            raise SearchError("LIMIT", f"Search criteria have more than {MAX_NODES} keys")
        if isinstance(node, Key):
            _check_key(node)
        elif isinstance(node, And):
            if not isinstance(node.keys, tuple | list):
                raise SearchError("BAD", "And needs a tuple of keys")
            stack.extend((k, depth + 1) for k in node.keys)
        elif isinstance(node, Or):
            stack.extend([(node.left, depth + 1), (node.right, depth + 1)])
        elif isinstance(node, Not):
            stack.append((node.key, depth + 1))
        else:
            raise SearchError("BAD", f"Not a search key: {type(node).__name__}")


def _check_key(key: Key) -> None:
    name, args = key.name, key.args
    if name not in KEYS or not isinstance(args, tuple):
        raise SearchError("BAD", f"Unknown search key {name!r}")

    def need(n: int) -> None:
        if len(args) != n:
            raise SearchError("BAD", f"{name} takes {n} argument(s)")

    if name in _NO_ARGS:
        need(0)
    elif name in _STRING_KEYS or name in _KEYWORD_KEYS:
        need(1)
        _check_string(name, args[0])
    elif name == "HEADER":
        need(2)
        _check_string(name, args[0])
        _check_string(name, args[1])
    elif name in _DATE_KEYS:
        need(1)
        if not isinstance(args[0], dt.date):
            raise SearchError("BAD", f"{name} needs a date")
    elif name == "MODSEQ":
        if not args or not _is_int(args[-1]) or args[-1] < 0:
            raise SearchError("BAD", "MODSEQ needs a number")
    elif name in _NUMBER_KEYS:
        need(1)
        if not _is_int(args[0]) or args[0] < 0:
            raise SearchError("BAD", f"{name} needs a number")
    elif name in _SET_KEYS:
        need(1)
        if not isinstance(args[0], set | frozenset | list | tuple | range):
            raise SearchError("BAD", f"{name} needs a set of UIDs")


def _check_string(name: str, value) -> None:
    if not isinstance(value, str | bytes):
        raise SearchError("BAD", f"{name} needs a string")
    if len(value) > MAX_STRING:
        raise SearchError("LIMIT", f"Search strings are limited to {MAX_STRING} characters")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: str | bytes) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


# Compiling to SQL ---------------------------------------------------------------------------

# A bound is True (everything), False (nothing) or a Q.
_ALL, _NONE = True, False


def _and(bounds: list) -> object:
    if any(b is _NONE for b in bounds):
        return _NONE
    qs = [b for b in bounds if b is not _ALL]
    if not qs:
        return _ALL
    out = qs[0]
    for q in qs[1:]:
        out = out & q
    return out


def _or(bounds: list) -> object:
    if any(b is _ALL for b in bounds):
        return _ALL
    qs = [b for b in bounds if b is not _NONE]
    if not qs:
        return _NONE
    out = qs[0]
    for q in qs[1:]:
        out = out | q
    return out


def _not(bound) -> object:
    if bound is _ALL:
        return _NONE
    if bound is _NONE:
        return _ALL
    return ~bound


def _as_q(bound) -> Q:
    if bound is _ALL:
        return Q()
    if bound is _NONE:
        return Q(pk__in=[])
    return bound


@dataclass
class _Compiled:
    upper: object
    lower: object
    exact: bool
    # Only for keys that Python must (partly) evaluate:
    check: object = None  # callable(row, ctx) -> bool
    cost: int = 0  # 0: annotation, 1: row fields, 2: header, 3: body
    children: tuple = ()
    kind: str = "key"  # key / and / or / not
    alias: str = ""  # annotation holding an exact subtree's value
    uids: frozenset | None = None  # a UID set checked in Python


class _Glob(Func):
    """`expr GLOB pattern` (SQLite), used for case-insensitive non-ASCII substrings."""

    arg_joiner = " GLOB "
    template = "(%(expressions)s)"
    output_field = BooleanField()


def _glob_pattern(needle: str) -> str:
    out = ["*"]
    for ch in needle:
        variants = {ch, ch.lower(), ch.upper(), ch.title()}
        variants = {v for v in variants if len(v) == 1}
        if len(variants) > 1:
            out.append("[" + "".join(sorted(variants)) + "]")
        elif ch in "*?[":
            out.append(f"[{ch}]")
        else:
            out.append(ch)
    out.append("*")
    return "".join(out)


# Leaf conditions ----------------------------------------------------------------------------

# The exact keys are written once (_key_bound) against these leaves: Q objects for the
# general path, plain SQL for the fast one (_fast_search), so both answer alike.


class _Leaves:
    """Leaf conditions as Q objects on Message (the general path)."""

    def lookup(self, field: str, lookup: str, value) -> object:
        return Q(**{f"{field}__{lookup}": value})

    def flag(self, bit: int, present: bool) -> object:
        alias = _FLAG_ALIAS[bit]  # annotated by _Search.base()
        return Q(**{f"{alias}__gt": 0}) if present else Q(**{alias: 0})

    def glob(self, field: str, pattern: str) -> object:
        return Q(_Glob(F(field), Value(pattern)))


@dataclass(frozen=True)
class _Sql:
    """A plain-SQL condition on `m` (Message) and `c` (its Content); combines like Q, and
    as flat: chains of one operator and double negations take no parentheses (SQLite's
    parser stack holds about 100 open ones)."""

    text: str
    params: tuple
    content: bool = False  # needs the Content join
    op: str = ""  # "AND" or "OR": `text` is a chain of them; "NOT": it negates `inner`
    inner: _Sql | None = None

    def _join(self, op: str, other: _Sql) -> _Sql:
        left, right = (s.text if s.op in ("", "NOT", op) else f"({s.text})" for s in (self, other))
        content = self.content or other.content
        return _Sql(f"{left} {op} {right}", self.params + other.params, content, op)

    def __and__(self, other: _Sql) -> _Sql:
        return self._join("AND", other)

    def __or__(self, other: _Sql) -> _Sql:
        return self._join("OR", other)

    def __invert__(self) -> _Sql:
        if self.inner is not None:
            return self.inner
        return _Sql(f"NOT ({self.text})", self.params, self.content, "NOT", self)


# Django's value patterns for its case-insensitive lookups (django.db.models.lookups).
_PATTERNS = {"iexact": "%s", "icontains": "%%%s%%", "istartswith": "%s%%", "iendswith": "%%%s"}


class _SqlLeaves(_Leaves):
    """The same leaves as plain SQL, written as the ORM writes them on this backend: its
    operators, casts, LIKE escaping and parameter values, and its rule for an integer out of
    the column's range (a comparison that never holds or always does, e.g. LARGER 2^64)."""

    def _column(self, field: str):
        content = field.startswith("content__")
        model = Content if content else Message
        f = model._meta.get_field(field.removeprefix("content__"))
        return f, f"{'c' if content else 'm'}.{connection.ops.quote_name(f.column)}", content

    def lookup(self, field: str, lookup: str, value) -> object:
        ops = connection.ops
        f, column, content = self._column(field)
        kind = f.get_internal_type()
        if lookup in _PATTERNS:
            prep = ops.prep_for_iexact_query if lookup == "iexact" else ops.prep_for_like_query
            value = _PATTERNS[lookup] % prep(value)
        elif _is_int(value):
            low, high = ops.integer_field_range(kind)
            if not low <= value <= high:
                never = lookup == "exact" or (lookup[0] == "g") == (value > high)
                return _NONE if never else _ALL
        else:
            value = f.get_db_prep_value(value, connection)
        lhs = ops.lookup_cast(lookup, kind) % column
        return _Sql(f"{lhs} {connection.operators[lookup] % '%s'}", (value,), content)

    def flag(self, bit: int, present: bool) -> object:
        return _Sql(f"(m.flags & %s) {'>' if present else '='} %s", (bit, 0))

    def glob(self, field: str, pattern: str) -> object:
        return _Sql(f"({self._column(field)[1]} GLOB %s)", (pattern,), True)


_Q_LEAVES, _SQL_LEAVES = _Leaves(), _SqlLeaves()


def _contains(field: str, needle: str, leaves: _Leaves) -> object:
    """Case-insensitive substring on a column (see the module docstring)."""
    if needle.isascii() or connection.vendor != "sqlite":
        return leaves.lookup(field, "icontains", needle)
    pattern = _glob_pattern(needle)
    if len(pattern.encode()) > 40_000:  # SQLITE_MAX_LIKE_PATTERN_LENGTH is 50,000 bytes
        raise SearchError("LIMIT", "Search string too long")
    return leaves.glob(field, pattern)


def _keyword_q(keyword: str, leaves: _Leaves) -> object:
    """Keyword present in the space-separated list, matching whole words (case-insensitive:
    SQLite's LIKE cannot be made case-sensitive portably, and clients do not rely on it)."""
    return _or(
        [
            leaves.lookup("keywords", "iexact", keyword),
            leaves.lookup("keywords", "istartswith", keyword + " "),
            leaves.lookup("keywords", "iendswith", " " + keyword),
            leaves.lookup("keywords", "icontains", " " + keyword + " "),
        ]
    )


def _day_start(day: dt.date) -> dt.datetime | None:
    """Midnight starting `day` in the server's time zone (None past the calendar's end)."""
    try:
        return timezone.make_aware(dt.datetime.combine(day, dt.time()), _server_tz())
    except (OverflowError, ValueError):
        return None


def _next_day(day: dt.date, days: int = 1) -> dt.date | None:
    try:
        return day + dt.timedelta(days=days)
    except OverflowError:
        return None


def _server_tz():
    return timezone.get_default_timezone()


def _before(field: str, day: dt.date | None, leaves: _Leaves) -> object:
    if day is None:
        return _ALL
    start = _day_start(day)
    return _ALL if start is None else leaves.lookup(field, "lt", start)


def _since(field: str, day: dt.date | None, leaves: _Leaves) -> object:
    if day is None:
        return _NONE
    start = _day_start(day)
    return _NONE if start is None else leaves.lookup(field, "gte", start)


def _utc_day(day: dt.date, field: str, op: str) -> object:
    """Compare `field` with midnight UTC of `day` (SENT* bounds; Content.date is UTC)."""
    try:
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    except (OverflowError, ValueError):
        return _ALL if op == "lt" else _NONE
    return Q(**{f"{field}__{op}": start})


_DAY = dt.timedelta(days=1)


def _shift(day: dt.date, days: int) -> dt.date:
    try:
        return day + dt.timedelta(days=days)
    except OverflowError:
        return dt.date.max if days > 0 else dt.date.min


def _key_bound(key: Key, recent_from_uid: int | None, leaves: _Leaves) -> object | None:
    """The condition that holds exactly for the messages matching `key`, or None when SQL
    alone cannot decide (blob keys, and UID sets of more than MAX_SQL_RANGES ranges).

    imapd/imap/flagsearch.py decides the flag, keyword, \\Recent, UID and MODSEQ keys the
    same way from an IMAP session's cached flags: change both together
    (tests/imapd/test_flagsearch.py checks that they agree)."""
    name, args = key.name, key.args
    if name in _BLOB_KEYS:
        return None
    if name in _FLAG_KEYS:
        return leaves.flag(*_FLAG_KEYS[name])
    if name == "ALL":
        return _ALL
    if name in ("RECENT", "OLD", "NEW"):
        recent = _NONE if recent_from_uid is None else leaves.lookup("uid", "gte", recent_from_uid)
        if name == "OLD":
            return _not(recent)
        if name == "NEW":  # RFC 3501 §6.4.4: RECENT UNSEEN
            return _and([recent, leaves.flag(flagbits.SEEN, False)])
        return recent
    if name in _KEYWORD_KEYS:
        keyword = _text(args[0])
        if not keyword or any(c in keyword for c in " \t\r\n"):
            found = _NONE  # no stored keyword is empty or contains a space
        else:
            found = _keyword_q(keyword, leaves)
        return found if name == "KEYWORD" else _not(found)
    if name == "LARGER":
        return leaves.lookup("size", "gt", args[0])
    if name == "SMALLER":
        return leaves.lookup("size", "lt", args[0])
    if name == "MODSEQ":  # RFC 7162 §3.1.5: entry name and type are ignored
        return leaves.lookup("modseq", "gte", args[-1])
    if name in ("BEFORE", "ON", "SINCE"):
        day = _as_date(args[0])
        if name == "BEFORE":
            return _before("internaldate", day, leaves)
        if name == "SINCE":
            return _since("internaldate", day, leaves)
        return _and(
            [_since("internaldate", day, leaves), _before("internaldate", _next_day(day), leaves)]
        )
    if name in _SET_KEYS:
        runs = _uid_runs(args[0])
        return _runs_bound(runs, leaves) if len(runs) <= MAX_SQL_RANGES else None
    needle = _text(args[0])
    if name == "FROM":
        return _or(
            [
                _contains("content__from_addr", needle, leaves),
                _contains("content__from_display", needle, leaves),
            ]
        )
    return _contains(f"content__{name.lower()}", needle, leaves)  # SUBJECT, TO, CC, BCC


def _uid_runs(uids) -> list[tuple[int, int]]:
    return _runs(sorted(u for u in uids if _is_int(u)))


def _runs_bound(runs: list[tuple[int, int]], leaves: _Leaves) -> object:
    return _or(
        [
            leaves.lookup("uid", "exact", lo)
            if lo == hi
            else _and([leaves.lookup("uid", "gte", lo), leaves.lookup("uid", "lte", hi)])
            for lo, hi in runs
        ]
    )


def _tree_bound(node, recent_from_uid: int | None, leaves: _Leaves) -> object | None:
    """The condition for a whole (checked) tree, or None if a key has none."""
    if isinstance(node, Key):
        return _key_bound(node, recent_from_uid, leaves)
    if isinstance(node, Not):
        inner = _tree_bound(node.key, recent_from_uid, leaves)
        return None if inner is None else _not(inner)
    bounds = []
    for child in (node.left, node.right) if isinstance(node, Or) else node.keys:
        bound = _tree_bound(child, recent_from_uid, leaves)
        if bound is None:
            return None
        bounds.append(bound)
    return _or(bounds) if isinstance(node, Or) else _and(bounds)


def _fast_search(
    account_id: int, mailbox_id: int, criteria, recent_from_uid: int | None
) -> list[int] | None:
    """search() as one plain SQL statement when every key is exact in SQL, else None
    (building and compiling the ORM query costs more CPU than running it)."""
    try:
        bound = _tree_bound(criteria, recent_from_uid, _SQL_LEAVES)
    except SearchError:
        _owned(account_id, mailbox_id)  # a foreign mailbox is reported first, as below
        raise
    if bound is None:
        return None
    mailbox, message, content = (
        connection.ops.quote_name(model._meta.db_table) for model in (Mailbox, Message, Content)
    )
    # A row -1 when the account owns the mailbox (UIDs are positive), then the matches.
    statement = f"SELECT -1 FROM {mailbox} WHERE id = %s AND account_id = %s"  # noqa: S608
    params = [mailbox_id, account_id]
    if bound is not _NONE:
        statement += f" UNION ALL SELECT m.uid FROM {message} m"  # noqa: S608
        if bound is not _ALL and bound.content:
            statement += f" JOIN {content} c ON c.id = m.content_id"
        statement += " WHERE m.mailbox_id = %s"
        params.append(mailbox_id)
        if bound is not _ALL:
            statement += f" AND {bound.text}"
            params.extend(bound.params)
    with raw_cursor() as cursor:
        cursor.execute(statement, params)
        found = sorted([row[0] for row in cursor.fetchall()])
    if not found or found[0] != -1:
        raise MailboxNotFound("Mailbox does not exist any more")
    return found[1:]


class _Search:
    def __init__(self, mailbox_id: int, recent_from_uid: int | None) -> None:
        self.mailbox_id = mailbox_id
        self.recent_from_uid = recent_from_uid
        self.aliases: dict[str, object] = {}
        self.existing_uids: list[int] | None = None
        self.need_parts = False
        self.need_header = False

    def base(self):
        qs = Message.objects.filter(mailbox_id=self.mailbox_id)
        return qs.alias(**{alias: F("flags").bitand(bit) for bit, alias in _FLAG_ALIAS.items()})

    def run(self, criteria) -> list[int]:
        root = self.compile(criteria)
        sets = _uid_sets_only(root)
        if sets is not None:
            # Exact keys AND scattered UID sets: one UID query, then set membership.
            rows = self.base().filter(_as_q(root.upper)).values_list("uid", flat=True)
            return sorted(u for u in rows.iterator(chunk_size=5000) if all(u in w for w in sets))
        lower = root.lower
        found: set[int] = set()
        if lower is not _NONE:
            found.update(self.base().filter(_as_q(lower)).values_list("uid", flat=True))
        if not root.exact:
            undecided = _and([root.upper, _not(lower)])
            if undecided is not _NONE:
                found.update(self.evaluate(root, undecided))
        return sorted(found)

    # -- compile

    def compile(self, node) -> _Compiled:
        if isinstance(node, Key):
            return self.compile_key(node)
        if isinstance(node, Not):
            inner = self.compile(node.key)
            return _Compiled(
                upper=_not(inner.lower),
                lower=_not(inner.upper),
                exact=inner.exact,
                children=(inner,),
                kind="not",
                cost=inner.cost,
            )
        if isinstance(node, Or):
            parts = [self.compile(node.left), self.compile(node.right)]
            combine, kind = _or, "or"
        else:
            parts = [self.compile(k) for k in node.keys]
            combine, kind = _and, "and"
        return _Compiled(
            upper=combine([p.upper for p in parts]),
            lower=combine([p.lower for p in parts]),
            exact=all(p.exact for p in parts),
            children=tuple(sorted(parts, key=lambda p: p.cost)),
            kind=kind,
            cost=max((p.cost for p in parts), default=0),
        )

    def compile_key(self, key: Key) -> _Compiled:
        name, args = key.name, key.args
        if name in _SET_KEYS:
            return self.compile_uids(args[0])
        bound = _key_bound(key, self.recent_from_uid, _Q_LEAVES)
        if bound is not None:
            return _exact(bound)
        if name in ("SENTBEFORE", "SENTON", "SENTSINCE"):
            return self.compile_sent(name, _as_date(args[0]))
        if name == "HEADER":
            self.need_header = True
            field, needle = _text(args[0]), _text(args[1]).lower()
            return _blob(lambda row, ctx: ctx.header_has(row, field, needle), cost=2)
        if name == "BODY":
            self.need_parts = True
            needle = _text(args[0]).lower()
            return _blob(lambda row, ctx: ctx.body_has(row, needle), cost=3)
        if name == "TEXT":
            self.need_parts = self.need_header = True
            needle = _text(args[0]).lower()
            return _blob(
                lambda row, ctx: ctx.header_text_has(row, needle) or ctx.body_has(row, needle),
                cost=3,
            )
        raise SearchError("BAD", f"Unknown search key {name!r}")  # _check_key prevents this

    def compile_sent(self, name: str, day: dt.date) -> _Compiled:
        """RFC 3501 §6.4.4: the Date: header's own date, "disregarding time and timezone".

        Content.date is UTC and a zone is within ±24h, so the header's date is at most one
        day off the UTC date: SQL decides everything but that band, which is checked by
        reading the Date: field itself.
        """
        f = "content__date"
        if name == "SENTBEFORE":
            lower, upper = _utc_day(_shift(day, -1), f, "lt"), _utc_day(_shift(day, 1), f, "lt")
        elif name == "SENTSINCE":
            lower, upper = _utc_day(_shift(day, 1), f, "gte"), _utc_day(_shift(day, -1), f, "gte")
        else:  # SENTON: only messages whose UTC date is within a day can qualify
            lower = _NONE
            upper = _and([_utc_day(_shift(day, -1), f, "gte"), _utc_day(_shift(day, 2), f, "lt")])
        self.need_header = True

        def check(row, ctx) -> bool:
            utc = row["content__date"]
            if utc is None:
                return False
            # Outside the one-day band the UTC date decides; inside it, read the header.
            earliest, latest = (utc - _DAY).date(), (utc + _DAY).date()
            if name == "SENTBEFORE" and (latest < day or earliest >= day):
                return latest < day
            if name == "SENTSINCE" and (earliest >= day or latest < day):
                return earliest >= day
            if name == "SENTON" and (latest < day or earliest > day):
                return False
            sent = ctx.sent_date(row)
            if sent is None:
                return False
            if name == "SENTBEFORE":
                return sent < day
            if name == "SENTSINCE":
                return sent >= day
            return sent == day

        return _Compiled(upper=upper, lower=lower, exact=False, check=check, cost=2)

    def compile_uids(self, uids: frozenset) -> _Compiled:
        """A UID set as a few ranges when possible (no giant IN lists), else in Python."""
        ordered = sorted(u for u in uids if _is_int(u))
        runs = _runs(ordered)
        if len(runs) > MAX_SQL_RANGES:
            # Gaps holding no message need not break a range: merge over them.
            runs = _runs_over(ordered, self.existing(ordered[0], ordered[-1]))
        if len(runs) <= MAX_SQL_RANGES:
            return _exact(_runs_bound(runs, _Q_LEAVES))
        wanted = frozenset(ordered)
        return _Compiled(
            upper=Q(uid__gte=ordered[0], uid__lte=ordered[-1]),
            lower=_NONE,
            exact=False,
            check=lambda row, ctx: row["uid"] in wanted,
            cost=1,
            uids=wanted,
        )

    def existing(self, lo: int, hi: int) -> list[int]:
        return list(
            Message.objects.filter(mailbox_id=self.mailbox_id, uid__gte=lo, uid__lte=hi)
            .order_by("uid")
            .values_list("uid", flat=True)
        )

    # -- Python pass

    def evaluate(self, root: _Compiled, undecided) -> Iterator[int]:
        """Yield the UIDs among `undecided` rows for which the whole tree holds."""
        annotations = {}
        self._annotate(root, annotations)
        fields = ["uid"]  # UID-set checks need no more; no join unless a key needs Content
        if self.need_header or self.need_parts:
            fields += ["content__date", "content__sha256", "content__header_end"]
        if self.need_parts:
            fields.append("content__parts")
        qs = (
            self.base()
            .filter(_as_q(undecided))
            .annotate(**annotations)
            .order_by("uid")
            .values(*fields, *annotations)
        )
        ctx = _BlobContext()
        for row in qs.iterator(chunk_size=BATCH):
            ctx.start(row)
            if _holds(root, row, ctx):
                yield row["uid"]

    def _annotate(self, node: _Compiled, out: dict) -> None:
        stack = [node]
        while stack:
            n = stack.pop()
            if n.exact:
                # An exact subtree inside an inexact one: SQL computes its value per row.
                n.alias = f"search_k{len(out)}"
                if n.lower is _ALL or n.lower is _NONE:
                    out[n.alias] = Value(n.lower, output_field=BooleanField())
                else:
                    out[n.alias] = Case(
                        When(n.lower, then=Value(True)),
                        default=Value(False),
                        output_field=BooleanField(),
                    )
            else:
                stack.extend(n.children)


def _uid_sets_only(node: _Compiled) -> list[frozenset] | None:
    """The UID sets if `node` is one Python-checked UID set, or an AND of exact keys and
    such sets; else None."""
    if node.uids is not None:
        return [node.uids]
    if node.kind != "and" or node.exact:
        return None
    sets = []
    for child in node.children:
        if child.uids is not None:
            sets.append(child.uids)
        elif not child.exact:
            return None
    return sets


def _exact(q) -> _Compiled:
    return _Compiled(upper=q, lower=q, exact=True)


def _blob(check, cost: int) -> _Compiled:
    return _Compiled(upper=_ALL, lower=_NONE, exact=False, check=check, cost=cost)


def _as_date(value) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


def _runs(ordered: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for u in ordered:
        if runs and u == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], u)
        elif not runs or u != runs[-1][1]:
            runs.append((u, u))
    return runs


def _runs_over(wanted: list[int], existing: list[int]) -> list[tuple[int, int]]:
    """Ranges of `wanted` where consecutive *existing* UIDs are all wanted."""
    wanted_set = set(wanted)
    runs: list[tuple[int, int]] = []
    open_run = False
    for u in existing:
        if u in wanted_set:
            if open_run:
                runs[-1] = (runs[-1][0], u)
            else:
                runs.append((u, u))
                open_run = True
        else:
            open_run = False
    return runs


def _holds(node: _Compiled, row: dict, ctx: _BlobContext) -> bool:
    """Evaluate the compiled tree on one row (recursion is bounded by MAX_DEPTH)."""
    if node.exact:
        return bool(row[node.alias])
    if node.kind == "key":
        return bool(node.check(row, ctx))
    if node.kind == "not":
        return not _holds(node.children[0], row, ctx)
    if node.kind == "and":
        return all(_holds(c, row, ctx) for c in node.children)
    return any(_holds(c, row, ctx) for c in node.children)


# Blob access --------------------------------------------------------------------------------


def _limit(name: str, default):
    return getattr(settings, name, default)


class _BlobContext:
    """Per-search state for reading blobs: the budget, and one message's decoded texts."""

    def __init__(self) -> None:
        self.max_bytes = _limit("BUZON_SEARCH_MAX_BYTES", 1024 * 1024 * 1024)
        self.deadline = time.monotonic() + _limit("BUZON_SEARCH_MAX_SECONDS", 30)
        self.read_bytes = 0
        self.row: dict = {}
        self._fields: list[tuple[str, str]] | None = None
        self._header_text: str | None = None
        self._body: list[str] | None = None

    def start(self, row: dict) -> None:
        self.row = row
        self._fields = self._header_text = self._body = None
        if time.monotonic() > self.deadline:
            raise SearchError("LIMIT", "Search took too long; narrow it down")

    def _read(self, f, start: int, end: int) -> bytes:
        end = max(start, end)
        self.read_bytes += end - start
        if self.read_bytes > self.max_bytes:
            raise SearchError("LIMIT", "Search would read too much mail; narrow it down")
        f.seek(start)
        return f.read(end - start)

    def _open(self, row: dict):
        try:
            return blobs.open_blob(row["content__sha256"])
        except OSError:
            return None  # a blob gone missing matches no text key rather than failing all

    # Header

    def fields(self, row: dict) -> list[tuple[str, str]]:
        """(lower-case name, decoded value) of each top-level header field."""
        if self._fields is None:
            self._fields = []
            f = self._open(row)
            if f is not None:
                with f:
                    end = min(row["content__header_end"] or 0, MAX_HEADER_BYTES)
                    raw = self._read(f, 0, end)
                self._fields = [
                    (name.lower(), decode_header_value(_field_value(field)))
                    for name, field in header_fields(raw)
                ]
        return self._fields

    def header_has(self, row: dict, name: str, needle: str) -> bool:
        name = name.lower()
        return any(n == name and needle in v.lower() for n, v in self.fields(row))

    def header_text_has(self, row: dict, needle: str) -> bool:
        if self._header_text is None:
            self._header_text = "\n".join(f"{n}: {v}" for n, v in self.fields(row)).lower()
        return needle in self._header_text

    def sent_date(self, row: dict) -> dt.date | None:
        """The Date: field's own calendar date (RFC 3501 §6.4.4 SENT*)."""
        utc = row["content__date"]
        if utc is None:
            return None
        for name, value in self.fields(row):
            if name == "date":
                try:
                    parsed = parsedate_to_datetime(value)
                except (TypeError, ValueError, IndexError, OverflowError):
                    parsed = None
                if parsed is not None:
                    return parsed.date()
                break
        return utc.astimezone(dt.UTC).date()

    # Body

    def body_has(self, row: dict, needle: str) -> bool:
        if self._body is None:
            self._body = list(self._body_texts(row))
        return any(needle in text for text in self._body)

    def _body_texts(self, row: dict) -> Iterator[str]:
        """Lower-cased decoded text of the text parts (and headers of attached messages),
        at most MAX_MESSAGE_SCAN_BYTES of raw input per message."""
        try:
            parts = json.loads(row.get("content__parts") or "{}")
        except ValueError:
            return
        if not isinstance(parts, dict) or "b" not in parts:
            return
        f = self._open(row)
        if f is None:
            return
        budget = MAX_MESSAGE_SCAN_BYTES
        with f:
            stack: list[dict] = [parts]
            while stack and budget > 0:
                node = stack.pop()
                if not isinstance(node, dict):
                    continue
                if isinstance(node.get("p"), list):
                    stack.extend(reversed(node["p"]))
                    continue
                inner = node.get("m")
                if isinstance(inner, dict):
                    # An attached message: its header is body text of the outer message.
                    start, end = _span(inner.get("h"), inner.get("b"), budget)
                    raw = self._read(f, start, end)
                    budget -= len(raw)
                    yield "\n".join(
                        f"{n}: {decode_header_value(_field_value(v))}"
                        for n, v in header_fields(raw)
                    ).lower()
                    stack.append(inner)
                    continue
                ctype = str(node.get("t", "text/plain")).lower()
                if not ctype.startswith("text/"):
                    continue  # RFC 9051 §6.4.4: non-text leaves may be skipped
                start, end = _span(node.get("b"), node.get("e"), budget)
                raw = self._read(f, start, end)
                budget -= len(raw)
                data = decode_part_body(raw, str(node.get("c", "7bit")))
                yield _decode_text(data, node.get("cs")).lower()


def _span(start, end, budget: int) -> tuple[int, int]:
    start = start if _is_int(start) and start >= 0 else 0
    end = end if _is_int(end) and end >= start else start
    return start, min(end, start + budget)


def _field_value(field: bytes) -> bytes:
    """The text after the colon of a raw header field."""
    return field.partition(b":")[2]


def _decode_text(data: bytes, charset) -> str:
    """Decode body text in its declared charset; unknown or absent: UTF-8, else cp1252."""
    if isinstance(charset, str) and charset:
        label = charset.strip().strip("\"'").lower()
        label = {"iso-8859-1": "cp1252", "latin1": "cp1252", "us-ascii": "utf-8"}.get(label, label)
        try:
            info = codecs.lookup(label)
            if getattr(info, "_is_text_encoding", True):
                return data.decode(info.name, "replace")
        except (LookupError, ValueError):
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")
