"""Parse a message once, on arrival: ENVELOPE, BODY/BODYSTRUCTURE, section offsets, headers.

`parse_message(raw)` scans the bytes itself (header/body split, boundary delimiters) and uses
the stdlib `email` package only for single header values (dates). It never raises and never
copies the body more than needed: section offsets index `raw`, so IMAP serves BODY[1.2],
BODY[1.2.MIME], BODY[1.HEADER] ... by slicing the stored bytes (see `find_section`).

Decisions worth knowing (each also noted where it is implemented):

- Lines end at LF; a CR before it belongs to the line ending. A bare CR is an ordinary byte
  (as in Dovecot): the store canonicalises line endings, the parser never guesses.
- The header block ends at the first empty line (or, within a multipart, at a boundary
  delimiter line). A line that is neither a field (RFC 5322 ftext name, colon) nor a
  continuation (starts with WSP) is skipped as junk when a well-formed field follows it
  before the empty line (broken wraps, mbox "From " lines); otherwise the header has no
  empty line and that line starts the body (as Python's email package does). The first of
  duplicated fields wins.
- Boundary delimiters (RFC 2046 §5.1.1): a line is a delimiter when it is "--" + boundary;
  every enclosing boundary is checked, innermost first, and an exact line match (only
  trailing LWSP after the optional "--") is preferred over the RFC's prefix match, so an
  inner "abc" and an outer "ab" do not confuse each other in either nesting order. The CRLF
  before a delimiter belongs to the delimiter. An enclosing delimiter closes every inner part.
- A multipart whose body has no delimiter line for its boundary (or that has no boundary
  parameter) is treated as text/plain covering its whole body (RFC 2045 §5.2 default), so
  its content stays visible and IMAP never sees a multipart without parts.
- Bounds: MIME nesting deeper than MAX_DEPTH, or parts beyond MAX_PARTS, are not split any
  further: a multipart or message/rfc822 part found there becomes an opaque
  application/octet-stream leaf; once MAX_PARTS is reached, the rest of a multipart is
  treated as epilogue.
- message/rfc822 and message/global (RFC 9051 §7.5.2) are parsed as encapsulated messages
  only with an identity Content-Transfer-Encoding (RFC 2046 §5.2.1); base64/QP-encoded ones
  are presented as application/octet-stream leaves, as their inner offsets would not index
  the stored bytes.
- ENVELOPE and BODYSTRUCTURE carry raw header bytes (RFC 2047 words left encoded, 8-bit bytes
  as literals); the `str` fields are decoded for display and search. Body line counts are
  the number of LFs in the part body (as Dovecot and WildDuck report them).

`ParsedMessage.parts` (JSON: dicts, lists, ints, strs) is one node per entity:

    {"v": 1,                    # format version, on the top-level node only
     "h": 0, "b": 412, "e": 9000,   # offsets in raw: header start, body start, end
     "t": "multipart/mixed",    # effective type (after the defaults above), lower case
     "c": "7bit",               # Content-Transfer-Encoding, lower case
     "p": [node, ...],          # multipart only: its parts, numbered 1..n
     "m": node,                 # message/rfc822|global only: the encapsulated message,
                                #   whose "h" is this node's "b" and "e" this node's "e"
     "d": "attachment",         # leaves, when present: disposition type,
     "cs": "utf-8",             #   text charset, decoded file name (RFC 2231/2047),
     "fn": "report.pdf",        #   and Content-ID
     "id": "<cid@x>"}

BODY[section] is raw[b:e] of the node `find_section` picks, BODY[section.MIME] is
raw[h:b], and BODY[section.HEADER]/.TEXT of a message node are its "m" node's raw[h:b] and
raw[b:e] (for the whole message: the top-level node's).
"""

from __future__ import annotations

import binascii
import codecs
import functools
import html
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote_to_bytes

from .imapfmt import NIL, nstring

__all__ = [
    "KNOWN_CTES",
    "MAX_DEPTH",
    "MAX_PARTS",
    "ParsedMessage",
    "SectionSpan",
    "base_subject",
    "decode_header_value",
    "decode_part_body",
    "find_section",
    "header_fields",
    "parse_message",
    "select_header_fields",
]

log = logging.getLogger(__name__)

#: Deepest MIME nesting that is parsed; parts deeper down are opaque leaves.
MAX_DEPTH = 50
#: Most nodes (the message, multiparts, leaves, encapsulated messages) in one parts tree.
MAX_PARTS = 1000
PREVIEW_CHARS = 200
#: Most addresses kept from one address header, and parameters from one header field:
#: legitimate mail is far below; the caps keep hostile headers from costing seconds.
MAX_ADDRESSES = 5000
MAX_PARAMS = 500
#: Content-Transfer-Encodings that decode_part_body understands (RFC 2045 §6, RFC 3516).
KNOWN_CTES = frozenset({"7bit", "8bit", "binary", "base64", "quoted-printable"})
#: parts JSON format version, stored with every message as parts["v"].
PARTS_VERSION = 1

# Placeholders for missing address pieces (as Dovecot writes them), so that an address
# without a domain is never mistaken for RFC 3501 §7.4.2 group syntax (a NIL host).
MISSING_MAILBOX = b"MISSING_MAILBOX"
MISSING_DOMAIN = b"MISSING_DOMAIN"

_LEAF, _MULTIPART, _MESSAGE = 0, 1, 2
_IDENTITY_CTES = (b"7bit", b"8bit", b"binary")
_TEXT_PLAIN_DEFAULT = [(b"charset", b"us-ascii")]  # RFC 2045 §5.2

# ---------------------------------------------------------------------------------------------
# Result types


@dataclass(frozen=True)
class ParsedMessage:
    """Everything the store keeps about a message; see the module docstring."""

    size: int
    envelope: bytes
    body: bytes
    bodystructure: bytes
    parts: dict[str, Any]
    header_end: int
    subject: str
    from_display: str
    from_addr: str
    to: str
    cc: str
    bcc: str
    date: datetime | None
    message_id: str
    in_reply_to: str
    references: list[str]
    base_subject: str
    has_attachments: bool
    preview: str


@dataclass(frozen=True, slots=True)
class SectionSpan:
    """Offsets into raw for one IMAP section (RFC 3501 §6.4.5); end offsets are exclusive.

    `start`/`end` are BODY[section]. `mime` is BODY[section.MIME] (None for the whole
    message). `header`/`text` are BODY[section.HEADER] / BODY[section.TEXT], present only when
    the section is a message (the whole message or a message/rfc822 part).
    """

    start: int
    end: int
    mime: tuple[int, int] | None
    header: tuple[int, int] | None
    text: tuple[int, int] | None
    content_type: str
    cte: str


# ---------------------------------------------------------------------------------------------
# Header block scanning


_FIELD_NAME = re.compile(rb"[!-9;-~]+[ \t]*")  # RFC 5322 §3.6.8 ftext, obs WSP before ":"


def _scan_header(
    raw: bytes, pos: int, limit: int, classify: Any = None
) -> tuple[list[tuple[int, int, int]], int, tuple | None]:
    """Scan a header block starting at `pos`.

    Return (fields, body_start, stop): fields as (start, colon, end) where end is the start
    of the next line (the field's last line ending included); `stop` is the delimiter tuple
    when a boundary delimiter line ended the block (then body_start is that line's start).
    """
    fields: list[tuple[int, int, int]] = []
    find = raw.find
    cur = -1
    cur_colon = 0
    while pos < limit:
        nl = find(b"\n", pos, limit)
        line_end = limit if nl < 0 else nl
        nxt = limit if nl < 0 else nl + 1
        c = raw[pos]
        if c == 32 or c == 9:  # folded continuation (RFC 5322 §2.2.3)
            pos = nxt
            continue
        if c == 10 or (c == 13 and line_end == pos + 1):  # the empty line
            if cur >= 0:
                fields.append((cur, cur_colon, pos))
            return fields, nxt, None
        if c == 45 and classify is not None and raw.startswith(b"--", pos):
            stop = classify(pos)
            if stop is not None:
                if cur >= 0:
                    fields.append((cur, cur_colon, pos))
                return fields, pos, stop
        colon = find(b":", pos, line_end)
        if cur >= 0:
            fields.append((cur, cur_colon, pos))
            cur = -1
        if colon <= pos or _FIELD_NAME.fullmatch(raw, pos, colon) is None:
            # not a header field (module docstring): junk, or the start of the body
            field = _next_field(raw, nxt, limit, classify)
            if field < 0:
                return fields, pos, None
            pos = field
            continue
        cur, cur_colon = pos, colon
        pos = nxt
    if cur >= 0:
        fields.append((cur, cur_colon, limit))
    return fields, limit, None


def _next_field(raw: bytes, pos: int, limit: int, classify: Any) -> int:
    """After a line that is not a field, return the start of the next line that is one, or
    -1 if the empty line, a boundary delimiter or the end comes first.

    A stray line among fields (an MTA's broken wrap, an mbox "From " line) is skipped;
    a header block that runs straight into the body (no empty line) ends at the stray line.
    """
    find = raw.find
    while pos < limit:
        nl = find(b"\n", pos, limit)
        line_end = limit if nl < 0 else nl
        c = raw[pos]
        if c == 10 or (c == 13 and line_end == pos + 1):
            return -1
        if c == 45 and classify is not None and raw.startswith(b"--", pos) and classify(pos):
            return -1
        if c != 32 and c != 9:
            colon = find(b":", pos, line_end)
            if colon > pos and _FIELD_NAME.fullmatch(raw, pos, colon):
                return pos
        pos = limit if nl < 0 else nl + 1
    return -1


def _field_name(raw: bytes, start: int, colon: int) -> bytes:
    # obs-optional (RFC 5322 §4.5.1) allows WSP before the colon: "Subject : x".
    return raw[start:colon].rstrip(b" \t").lower()


def _value(raw: bytes, colon: int, end: int) -> bytes:
    """Return a field value unfolded (CRLF removed before WSP, RFC 5322 §2.2.3), trimmed."""
    v = raw[colon + 1 : end]
    if b"\n" in v:
        v = v.replace(b"\r\n", b"").replace(b"\n", b"")
    return v.strip(b" \t\r")


def header_fields(
    raw: bytes, header_end: int | None = None, start: int = 0
) -> list[tuple[str, bytes]]:
    """Return the header fields between `start` and `header_end` as (name, field bytes).

    The bytes are the whole field exactly as stored: name, colon, value, folding and line
    endings. Names are as written (without WSP before the colon), decoded with
    surrogateescape. Use SectionSpan.header / .mime for the offsets of nested headers.
    """
    limit = len(raw) if header_end is None else min(header_end, len(raw))
    fields, _, _ = _scan_header(raw, start, limit)
    out = []
    for fstart, colon, fend in fields:
        name = raw[fstart:colon].rstrip(b" \t").decode("utf-8", "surrogateescape")
        out.append((name, raw[fstart:fend]))
    return out


def select_header_fields(
    raw: bytes,
    names: Iterable[str | bytes],
    header_end: int | None = None,
    start: int = 0,
    *,
    exclude: bool = False,
) -> bytes:
    """Return BODY[HEADER.FIELDS (names)] (or .NOT with exclude=True), RFC 3501 §6.4.5.

    Names match case-insensitively; matching fields are returned byte-exact in their
    original order, followed by the empty line.
    """
    wanted = {
        (n.encode("utf-8", "surrogateescape") if isinstance(n, str) else n).lower() for n in names
    }
    limit = len(raw) if header_end is None else min(header_end, len(raw))
    fields, _, _ = _scan_header(raw, start, limit)
    out = []
    for fstart, colon, fend in fields:
        if (_field_name(raw, fstart, colon) in wanted) != exclude:
            field = raw[fstart:fend]
            if not field.endswith(b"\n"):
                field += b"\r\n"
            out.append(field)
    out.append(b"\r\n")
    return b"".join(out)


# ---------------------------------------------------------------------------------------------
# Decoding header text (RFC 2047) and charsets

# RFC 2047 §2 encoded-word; RFC 2231 §5 allows "*language" after the charset.
_EW = re.compile(rb"=\?([^?\s*]+)(?:\*[^?\s]*)?\?([bBqQ])\?([^?\s]*)\?=")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_B64_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_B64_DELETE = bytes(c for c in range(256) if c not in _B64_CHARS)
_CHARSET_ALIASES = {
    # Undeclared/unknown 8-bit text: _decode_charset tries UTF-8, then windows-1252.
    "us-ascii": None,
    "ascii": None,
    "ansi_x3.4-1968": None,
    "x-unknown": None,
    "unknown-8bit": None,
    "unknown": None,
    "default": None,
    # WHATWG practice: labels that are in reality supersets.
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "iso_8859-1": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "tis-620": "cp874",
}


@functools.lru_cache(maxsize=256)
def _codec(charset: str) -> str | None:
    """Return a Python text codec name for a MIME charset label, None when unknown."""
    cs = charset.strip().strip("\"'").lower()
    if cs in _CHARSET_ALIASES:
        return _CHARSET_ALIASES[cs]
    try:
        info = codecs.lookup(cs)
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True):  # rot13, zlib_codec, hex ...
        return None
    return info.name


def _decode_charset(data: bytes, charset: str | bytes | None) -> str:
    """Decode text in `charset`; unknown or absent charset: UTF-8, else windows-1252."""
    if charset:
        if isinstance(charset, bytes):
            charset = charset.decode("ascii", "replace")
        codec = _codec(charset)
        if codec is not None:
            try:
                return data.decode(codec, "replace")
            except Exception:  # noqa: S110 - a codec failing oddly: fall back below
                pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


_text = _decode_charset  # 8-bit header bytes without a declared charset: _text(b, None)


def _b64decode(data: bytes) -> bytes:
    """Decode base64 leniently: ignore junk bytes, fix padding, join padded chunks."""
    data = data.translate(None, _B64_DELETE)
    if not data:
        return b""
    core = data.rstrip(b"=")
    chunks = core.split(b"=") if b"=" in core else [core]
    out = []
    for chunk in chunks:
        if not chunk:
            continue
        if len(chunk) % 4 == 1:  # one leftover character carries no whole octet
            chunk = chunk[:-1]
        chunk += b"=" * (-len(chunk) % 4)
        try:
            out.append(binascii.a2b_base64(chunk))
        except (binascii.Error, ValueError):
            pass
    return b"".join(out)


_B64_ALPHABET = re.compile(rb"[A-Za-z0-9+/]*")


def _ew_bytes(enc: bytes, text: bytes) -> bytes | None:
    """Decode an encoded-word's text; None when it is not valid enough to trust."""
    if enc in (b"b", b"B"):
        core = text.rstrip(b"=")  # padding is repaired, not required
        if _B64_ALPHABET.fullmatch(core) is None:
            return None
        if len(core) % 4 == 1:
            core = core[:-1]
        try:
            return binascii.a2b_base64(core + b"=" * (-len(core) % 4))
        except (binascii.Error, ValueError):
            return None
    return binascii.a2b_qp(text, header=True)  # RFC 2047 §4.2: "_" is a space


def _decode_ew(value: bytes) -> str:
    """Decode RFC 2047 encoded-words (unstructured text); undecodable words stay as they are.

    Whitespace between adjacent encoded-words is dropped (RFC 2047 §6.2) and adjacent words
    in the same charset are joined before decoding, so a character split across two words
    survives. Iterative: long headers cost linear time.
    """
    if b"=?" not in value:
        return _text(value, None)
    out: list[str] = []
    pos = 0
    pend_cs: bytes | None = None
    pend = b""
    for m in _EW.finditer(value):
        data = _ew_bytes(m.group(2), m.group(3))
        gap = value[pos : m.start()]
        if data is None:
            if pend_cs is not None:
                out.append(_decode_charset(pend, pend_cs))
                pend_cs, pend = None, b""
            out.append(_text(value[pos : m.end()], None))
            pos = m.end()
            continue
        adjacent = pend_cs is not None and (not gap or gap.isspace())
        cs = m.group(1).lower()
        if adjacent and cs == pend_cs:
            pend += data
        else:
            if pend_cs is not None:
                out.append(_decode_charset(pend, pend_cs))
            if not adjacent and gap:
                out.append(_text(gap, None))
            pend_cs, pend = cs, data
        pos = m.end()
    if pend_cs is not None:
        out.append(_decode_charset(pend, pend_cs))
    if pos < len(value):
        out.append(_text(value[pos:], None))
    return "".join(out)


def _clean(text: str) -> str:
    """Make decoded text safe to store and show: controls become spaces, ends trimmed."""
    return _CONTROLS.sub(" ", text).strip()


def decode_header_value(value: bytes | str) -> str:
    """Return an unstructured header value decoded for display (RFC 2047), one line."""
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
    if b"\n" in value:
        value = value.replace(b"\r\n", b"").replace(b"\n", b"")
    return _clean(_decode_ew(value))


# ---------------------------------------------------------------------------------------------
# Addresses (RFC 5322 §3.4, obsolete syntax §4.4), for ENVELOPE and display

_WS, _QS, _LIT, _SPECIAL, _COMMENT, _ATOM = 1, 2, 3, 4, 5, 6
_ADDR_TOKEN = re.compile(
    rb"""([ \t\r\n]+)
    |("[^"\\]*(?:\\.[^"\\]*)*(?:"|\Z))
    |(\[[^\[\]\\]*(?:\\.[^\[\]\\]*)*(?:\]|\Z))
    |([,:;<>@.])
    |(\()
    |([^ \t\r\n"(),:;<>@.\[\]\\]+|[)\]\\])""",
    re.S | re.X,
)
_QUOTED_PAIR = re.compile(rb"\\(.)", re.S)


def _tokenize_addresses(value: bytes) -> Iterator[tuple[int, bytes]]:
    pos, n = 0, len(value)
    match = _ADDR_TOKEN.match
    while pos < n:
        m = match(value, pos)
        if m is None:  # unreachable: every byte matches some alternative
            break
        kind = m.lastindex or _ATOM
        if kind == _COMMENT:  # comments nest and may hold quoted-pairs (RFC 5322 §3.2.2)
            depth, i = 0, pos
            while i < n:
                c = value[i]
                if c == 92:
                    i += 2
                    continue
                if c == 40:
                    depth += 1
                elif c == 41:
                    depth -= 1
                    if depth == 0:
                        i += 1
                        break
                i += 1
            i = min(i, n)
            inner = value[pos + 1 : i - 1 if value[i - 1 : i] == b")" else i]
            yield _COMMENT, inner
            pos = i
        else:
            yield kind, m.group(kind)
            pos = m.end()


def _unquote(token: bytes) -> bytes:
    inner = token[1:-1] if len(token) >= 2 and token.endswith(b'"') else token[1:]
    if b"\\" in inner:
        inner = _QUOTED_PAIR.sub(rb"\1", inner)
    return inner


def _phrase(toks: Sequence[tuple[int, bytes]]) -> tuple[bytes, str]:
    """Return a display-name phrase raw (quotes removed, RFC 2047 kept) and decoded.

    RFC 2047 §5(3): encoded-words are decoded in atoms, never inside quoted strings.
    """
    segs: list[tuple[bool, bytes]] = []
    space = False
    for kind, text in toks:
        if kind == _WS or kind == _COMMENT:
            space = bool(segs)
            continue
        sep = b" " if space else b""
        space = False
        if kind == _QS:
            segs.append((True, sep + _unquote(text)))
        else:
            segs.append((False, sep + text))
    raw = b"".join(s for _, s in segs).strip(b" \t")
    decoded: list[str] = []
    run: list[bytes] = []
    for quoted, s in segs:
        if quoted:
            if run:
                decoded.append(_decode_ew(b"".join(run)))
                run = []
            decoded.append(_text(s, None))
        else:
            run.append(s)
    if run:
        decoded.append(_decode_ew(b"".join(run)))
    return raw, _clean("".join(decoded))


class _Address:
    """One mailbox, or a group marker: group start has only `mailbox` (the group name), group
    end has nothing (RFC 3501 §7.4.2)."""

    __slots__ = ("name", "adl", "mailbox", "host", "display_name", "group")

    def __init__(self, name, adl, mailbox, host, display_name="", group=0):
        self.name, self.adl, self.mailbox, self.host = name, adl, mailbox, host
        self.display_name, self.group = display_name, group

    def imap(self) -> bytes:
        if self.group:
            return b"(NIL NIL %b NIL)" % nstring(self.mailbox)
        return b"(%b %b %b %b)" % (
            nstring(self.name),
            nstring(self.adl),
            nstring(self.mailbox or MISSING_MAILBOX),
            nstring(self.host or MISSING_DOMAIN),
        )

    def addr_spec(self) -> str:
        local = _text(self.mailbox or b"", None)
        if not self.host:
            return _clean(local)
        return _clean(f"{local}@{_text(self.host, None)}")


def _mailbox(cur: list[tuple[int, bytes]]) -> _Address | None:
    words = [t for t in cur if t[0] != _WS and t[0] != _COMMENT]
    if not words:
        return None
    angle = next((i for i, t in enumerate(cur) if t == (_SPECIAL, b"<")), -1)
    name: bytes | None = None
    display = ""
    if angle >= 0:
        raw_name, display = _phrase(cur[:angle])
        name = raw_name or None
        addr = []
        for t in cur[angle + 1 :]:
            if t == (_SPECIAL, b">"):
                break
            if t[0] != _WS and t[0] != _COMMENT:
                addr.append(t)
    else:
        addr = words
    adl = None
    if addr and addr[0] == (_SPECIAL, b"@"):  # obs-route: "@a,@b:" before the addr-spec
        colon = next((i for i, t in enumerate(addr) if t == (_SPECIAL, b":")), -1)
        if colon > 0:
            adl = b"".join(t[1] for t in addr[:colon])
            addr = addr[colon + 1 :]
    at = -1
    for i in range(len(addr) - 1, -1, -1):
        if addr[i] == (_SPECIAL, b"@"):
            at = i
            break
    if at >= 0:
        local, domain = addr[:at], addr[at + 1 :]
    else:
        local, domain = addr, []
    mailbox = b"".join(t[1] for t in local)
    host = b"".join(t[1] for t in domain)
    if name is None and angle < 0:  # "addr (Comment Name)": the comment is the name
        comments = [t[1] for t in cur if t[0] == _COMMENT and t[1].strip()]
        if comments:
            name = comments[-1].strip()
            display = _clean(_decode_ew(name))
    if not mailbox and not host:
        if name is None:
            return None
    return _Address(name, adl, mailbox, host, display, group=0)


# Fast path for the everyday list of `Name <local@domain>`, `"Name" <local@domain>` and
# `local@domain` (no comments, groups, escapes or 8-bit): the full parser's result, faster.
_ATEXT = rb"!#-'*+\-/-9=?A-Z^-~"
_FAST_UNSAFE = re.compile(rb"[():;\\\[\]\x80-\xff\r\n\x00]")
_FAST_ITEM = re.compile(
    rb'[ \t]*(?:(?:"([^"\\]*)"|([' + _ATEXT + rb" \t.]*?))[ \t]*<([" + _ATEXT + rb".]+)@"
    rb"([A-Za-z0-9.\-]+)>|([" + _ATEXT + rb".]+)@([A-Za-z0-9.\-]+))?[ \t]*(?:,|\Z)"
)


def _addresses_fast(value: bytes) -> list[_Address] | None:
    out: list[_Address] = []
    pos, n = 0, len(value)
    match = _FAST_ITEM.match
    while pos < n and len(out) < MAX_ADDRESSES:
        m = match(value, pos)
        if m is None:
            return None
        pos = m.end()
        quoted, atoms, local, domain, bare_local, bare_domain = m.groups()
        if local is not None:
            if quoted is not None:  # no 2047 decoding inside quotes (RFC 2047 §5(3))
                name = quoted.strip(b" \t")
                display = _clean(quoted.decode("ascii"))
            else:
                name = b" ".join(atoms.split())
                display = _clean(_decode_ew(name)) if b"=?" in name else name.decode("ascii")
            out.append(_Address(name or None, None, local, domain, display))
        elif bare_local is not None:
            out.append(_Address(None, None, bare_local, bare_domain))
    return out


def _addresses(value: bytes | None) -> list[_Address]:
    """Parse an address-list (RFC 5322 §3.4) for ENVELOPE and display."""
    if not value:
        return []
    if _FAST_UNSAFE.search(value) is None:
        fast = _addresses_fast(value)
        if fast is not None:
            return fast
    return _addresses_full(value)


def _addresses_full(value: bytes) -> list[_Address]:
    """Parse an address-list leniently: groups, obs-route, comments, junk between commas."""
    out: list[_Address] = []
    cur: list[tuple[int, bytes]] = []
    in_group = angle = False
    for tok in _tokenize_addresses(value):
        if len(out) >= MAX_ADDRESSES:
            break
        if tok[0] == _SPECIAL:
            c = tok[1]
            if angle:
                if c == b">":
                    angle = False
                cur.append(tok)
                continue
            if c == b"<":
                angle = True
            elif c == b",":
                if (a := _mailbox(cur)) is not None:
                    out.append(a)
                cur = []
                continue
            elif c == b":" and not in_group:
                if not any(t == (_SPECIAL, b"@") for t in cur):
                    raw_name, display = _phrase(cur)
                    out.append(_Address(None, None, raw_name, None, display, group=1))
                    in_group = True
                    cur = []
                    continue
            elif c == b";":
                if (a := _mailbox(cur)) is not None:
                    out.append(a)
                cur = []
                if in_group:
                    out.append(_Address(None, None, None, None, "", group=2))
                    in_group = False
                continue
        cur.append(tok)
    if (a := _mailbox(cur)) is not None:
        out.append(a)
    if in_group:
        out.append(_Address(None, None, None, None, "", group=2))
    return out


def _address_list_imap(addrs: list[_Address]) -> bytes:
    if not addrs:
        return NIL
    return b"(" + b"".join(a.imap() for a in addrs) + b")"


def _address_display(addrs: list[_Address]) -> str:
    out = []
    for a in addrs:
        if a.group:
            continue
        spec = a.addr_spec()
        out.append(f"{a.display_name} <{spec}>" if a.display_name else spec)
    return ", ".join(out)


# ---------------------------------------------------------------------------------------------
# Content-Type / Content-Disposition parameters (RFC 2045 §5.1, RFC 2183, RFC 2231)

_PARAM = re.compile(
    rb'[ \t\r\n]*([^=;]*)(?:=[ \t\r\n]*("[^"\\]*(?:\\.[^"\\]*)*(?:"|\Z)|[^;]*))?[^;]*;?',
    re.S,
)
_TOKEN = re.compile(rb"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
_COMMENT_RE = re.compile(rb"\([^()]*\)")


def _params(value: bytes, pos: int) -> list[tuple[bytes, bytes]]:
    """Parse `; name=value` pairs from value[pos:]; values unquoted, names as written."""
    out: list[tuple[bytes, bytes]] = []
    n = len(value)
    while pos < n and len(out) < MAX_PARAMS:
        m = _PARAM.match(value, pos)
        if m is None or m.end() == pos:
            break
        pos = m.end()
        name, val = m.group(1).rstrip(b" \t\r\n"), m.group(2)
        if not name or val is None:
            continue
        if val.startswith(b'"'):
            val = _unquote(val)
        else:
            cut = val.find(b"(")  # a trailing comment (RFC 2045 §5.1 allows CFWS)
            if cut >= 0:
                val = val[:cut]
            val = val.strip(b" \t\r\n")
        out.append((name, val))
    return out


def _split_type(value: bytes | None) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """Split 'token; params' into (lower-case token, params)."""
    if value is None:
        return b"", []
    semi = value.find(b";")
    head = value if semi < 0 else value[:semi]
    if b"(" in head:
        head = _COMMENT_RE.sub(b"", head)
    params = _params(value, semi + 1) if semi >= 0 else []
    return head.strip(b" \t\r\n").lower(), params


def _param_lookup(params: list[tuple[bytes, bytes]], name: bytes) -> tuple[bytes | None, bytes]:
    """Return (value, charset) of parameter `name`, joining RFC 2231 continuations.

    An RFC 2231 form (name*, name*0, name*1* ...) wins over a plain name=; segments are
    joined in numeric order; percent-encoding is undone in extended segments.
    """
    plain = None
    segs: dict[int, tuple[bool, bytes]] = {}
    prefix = name + b"*"
    for pname, value in params:
        key = pname.lower()
        if key == name:
            if plain is None:
                plain = value
        elif key.startswith(prefix):
            rest = key[len(prefix) :]
            extended = rest == b"" or rest.endswith(b"*")
            num = rest.rstrip(b"*")
            if num == b"":
                idx = 0
            elif num.isdigit() and len(num) <= 4:
                idx = int(num)
            else:
                continue
            segs.setdefault(idx, (extended, value))
    if not segs:
        return plain, b""
    charset = b""
    out = []
    for i, idx in enumerate(sorted(segs)):
        extended, value = segs[idx]
        if extended:
            if i == 0 and value.count(b"'") >= 2:
                charset, _lang, value = value.split(b"'", 2)
            value = unquote_to_bytes(value)
        out.append(value)
    return b"".join(out), charset


def _param_text(params: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    value, charset = _param_lookup(params, name)
    if value is None:
        return None
    if charset:
        text = _decode_charset(value, charset)
    else:
        text = _decode_ew(value)  # RFC 2047 in parameters: wrong, but what MUAs send
    return _CONTROLS.sub("", text).strip()


# ---------------------------------------------------------------------------------------------
# Parts tree


class _Node:
    __slots__ = (
        "h",
        "b",
        "e",
        "kind",
        "maintype",
        "subtype",
        "params",
        "cte",
        "hdr",
        "children",
        "message",
    )

    def __init__(self, h: int):
        self.h = self.b = self.e = h
        self.kind = _LEAF
        self.maintype, self.subtype = b"text", b"plain"
        self.params: list[tuple[bytes, bytes]] = _TEXT_PLAIN_DEFAULT
        self.cte = b"7bit"
        self.hdr: dict[bytes, tuple[int, int]] = {}
        self.children: list[_Node] = []
        self.message: _Node | None = None


class _Parser:
    def __init__(self, raw: bytes):
        self.raw = raw
        self.n = len(raw)
        self.stack: list[bytes] = []  # boundaries of the enclosing multiparts, innermost last
        self.prefixes: tuple[bytes, ...] = ()  # "--" + each boundary: a one-call pre-check
        self.count = 0

    # -- boundary delimiters (RFC 2046 §5.1.1)

    def classify(self, ls: int) -> tuple[int, bool, int, int] | None:
        """If the line at `ls` (which starts with "--") is a delimiter of an enclosing
        multipart, return (level, is_close, line_start, next_line_start)."""
        stack = self.stack
        if not stack or not self.raw.startswith(self.prefixes, ls):
            return None
        raw = self.raw
        nl = raw.find(b"\n", ls)
        nxt = self.n if nl < 0 else nl + 1
        line = raw[ls + 2 : self.n if nl < 0 else nl]
        top = len(stack) - 1
        for level in range(top, -1, -1):  # exact line first, innermost boundary first
            b = stack[level]
            if line.startswith(b):
                rest = line[len(b) :]
                close = rest.startswith(b"--")
                if close:
                    rest = rest[2:]
                if not rest.strip(b" \t\r"):
                    return level, close, ls, nxt
        for level in range(top, -1, -1):  # the RFC's prefix match
            b = stack[level]
            if line.startswith(b):
                return level, line.startswith(b"--", len(b)), ls, nxt
        return None

    def next_delim(self, pos: int) -> tuple[int, bool, int, int] | None:
        if not self.stack:
            return None
        raw = self.raw
        if (pos == 0 or raw[pos - 1] == 10) and raw.startswith(b"--", pos):
            d = self.classify(pos)
            if d is not None:
                return d
        find = raw.find
        i = find(b"\n--", pos)
        while i >= 0:
            d = self.classify(i + 1)
            if d is not None:
                return d
            i = find(b"\n--", i + 1)
        return None

    def before(self, ls: int, lo: int) -> int:
        """End of the content before the delimiter line at `ls`: the CRLF preceding a
        delimiter belongs to the delimiter (RFC 2046 §5.1.1)."""
        e = ls
        if e > lo and self.raw[e - 1] == 10:
            e -= 1
            if e > lo and self.raw[e - 1] == 13:
                e -= 1
        return max(e, lo)

    # -- entities

    def entity(
        self, h: int, depth: int, digest_child: bool
    ) -> tuple[_Node, tuple[int, bool, int, int] | None]:
        """Parse the entity (message or body part) whose header starts at `h`; return it and
        the delimiter that ended it (None: it ran to the end of raw)."""
        raw = self.raw
        self.count += 1
        node = _Node(h)
        fields, body_start, stop = _scan_header(raw, h, self.n, self.classify)
        hdr = node.hdr
        for fstart, colon, fend in fields:
            name = raw[fstart:colon].rstrip(b" \t").lower()
            if name not in hdr:
                hdr[name] = (colon, fend)

        # Content-Type (RFC 2045 §5; §5.2 default; RFC 2046 §5.1.5 digest default)
        ct = hdr.get(b"content-type")
        if ct is not None:
            mtype, params = _split_type(_value(raw, *ct))
            main, _, sub = mtype.partition(b"/")
            main, sub = main.strip(), sub.strip()
            if _TOKEN.fullmatch(main) and _TOKEN.fullmatch(sub):
                node.maintype, node.subtype, node.params = main, sub, params
            elif main == b"text" or main == b"multipart":  # "text;charset=..." etc.
                node.maintype = main
                node.subtype = b"plain" if main == b"text" else b"mixed"
                node.params = params
        elif digest_child:
            node.maintype, node.subtype, node.params = b"message", b"rfc822", []
        cte = hdr.get(b"content-transfer-encoding")
        if cte is not None:
            token, _ = _split_type(_value(raw, *cte))
            if token:
                node.cte = token

        kind = _LEAF
        if node.maintype == b"multipart":
            kind = _MULTIPART
        elif node.maintype == b"message" and node.subtype in (b"rfc822", b"global"):
            kind = _MESSAGE if node.cte in _IDENTITY_CTES else -1
        if kind != _LEAF and (kind == -1 or depth >= MAX_DEPTH or self.count >= MAX_PARTS):
            node.maintype, node.subtype, node.params = b"application", b"octet-stream", []
            kind = _LEAF

        if stop is not None:  # the header ran into a delimiter: there is no body
            node.b = node.e = self.before(stop[2], h)
            if kind == _MESSAGE:
                node.kind = _MESSAGE
                node.message = _Node(node.b)
                self.count += 1
            elif kind == _MULTIPART:
                node.maintype, node.subtype, node.params = b"text", b"plain", _TEXT_PLAIN_DEFAULT
            return node, stop
        node.b = body_start

        if kind == _MESSAGE:
            child, stop = self.entity(body_start, depth + 1, False)
            node.kind = _MESSAGE
            node.message = child
            node.e = child.e
            return node, stop
        if kind == _MULTIPART:
            boundary, _ = _param_lookup(node.params, b"boundary")
            boundary = (boundary or b"").rstrip(b" \t")
            if boundary:
                return self.multipart(node, boundary, depth)
            node.maintype, node.subtype, node.params = b"text", b"plain", _TEXT_PLAIN_DEFAULT
        stop = self.next_delim(body_start)
        node.e = self.n if stop is None else self.before(stop[2], body_start)
        return node, stop

    def multipart(
        self, node: _Node, boundary: bytes, depth: int
    ) -> tuple[_Node, tuple[int, bool, int, int] | None]:
        stack = self.stack
        stack.append(boundary)
        outer = self.prefixes
        self.prefixes = (*outer, b"--" + boundary)
        level = len(stack) - 1
        digest = node.subtype == b"digest"
        children = node.children
        d = self.next_delim(node.b)
        while d is not None and d[0] == level and not d[1] and self.count < MAX_PARTS:
            child, d = self.entity(d[3], depth + 1, digest)
            children.append(child)
        stack.pop()
        self.prefixes = outer
        if d is not None and d[0] == level:
            # After our close delimiter (or the part cap): the epilogue, up to an enclosing
            # delimiter or the end (RFC 2046 §5.1.1: implementations must ignore it).
            d = self.next_delim(d[3])
        node.e = self.n if d is None else self.before(d[2], node.b)
        for child in reversed(children):
            if child.e <= node.e:
                break
            _clamp(child, node.e)
        if children:
            node.kind = _MULTIPART
        else:  # no delimiter for our boundary: show the body as text (module docstring)
            node.maintype, node.subtype, node.params = b"text", b"plain", _TEXT_PLAIN_DEFAULT
        return node, d


def _clamp(node: _Node, limit: int) -> None:
    """Pull `node` and its last descendants back to end at `limit`.

    Needed when one line ending serves twice, e.g. "--inner CRLF --outer": the CRLF ends the
    inner delimiter line and, by RFC 2046 §5.1.1, belongs to the outer delimiter too. The
    part between them is then empty and must not reach past its parent's end.
    """
    node.e = min(node.e, limit)
    node.b = min(node.b, limit)
    node.h = min(node.h, limit)
    if node.message is not None:
        _clamp(node.message, limit)
    for child in reversed(node.children):
        if child.e <= limit:
            break
        _clamp(child, limit)


# ---------------------------------------------------------------------------------------------
# Serialisation: ENVELOPE, BODY, BODYSTRUCTURE (RFC 3501 §7.4.2, RFC 9051 §7.5.2)


def _hval(raw: bytes, hdr: dict[bytes, tuple[int, int]], name: bytes) -> bytes | None:
    t = hdr.get(name)
    return None if t is None else _value(raw, t[0], t[1])


def _envelope(raw: bytes, hdr: dict[bytes, tuple[int, int]], cache: dict | None = None) -> bytes:
    def addrs(name: bytes) -> list[_Address]:
        if cache is not None and name in cache:
            return cache[name]
        parsed = _addresses(_hval(raw, hdr, name))
        if cache is not None:
            cache[name] = parsed
        return parsed

    from_ = addrs(b"from")
    # RFC 3501 §7.4.2: absent or empty Sender / Reply-To default to From.
    sender = addrs(b"sender") or from_
    reply_to = addrs(b"reply-to") or from_
    return b"(%b %b %b %b %b %b %b %b %b %b)" % (
        nstring(_hval(raw, hdr, b"date")),
        nstring(_hval(raw, hdr, b"subject")),
        _address_list_imap(from_),
        _address_list_imap(sender),
        _address_list_imap(reply_to),
        _address_list_imap(addrs(b"to")),
        _address_list_imap(addrs(b"cc")),
        _address_list_imap(addrs(b"bcc")),
        nstring(_hval(raw, hdr, b"in-reply-to")),
        nstring(_hval(raw, hdr, b"message-id")),
    )


def _param_list(params: list[tuple[bytes, bytes]]) -> bytes:
    if not params:
        return NIL
    return b"(" + b" ".join(b"%b %b" % (nstring(k), nstring(v)) for k, v in params) + b")"


def _extension(raw: bytes, node: _Node) -> bytes:
    """body-fld-dsp SP body-fld-lang SP body-fld-loc (RFC 3501 §7.4.2)."""
    hdr = node.hdr
    dsp = _hval(raw, hdr, b"content-disposition")
    if dsp:
        semi = dsp.find(b";")
        token = (dsp if semi < 0 else dsp[:semi]).strip(b" \t")
        params = _params(dsp, semi + 1) if semi >= 0 else []
        dsp_out = b"(%b %b)" % (nstring(token), _param_list(params))
    else:
        dsp_out = NIL
    lang = _hval(raw, hdr, b"content-language")
    if lang:
        if b"(" in lang:
            lang = _COMMENT_RE.sub(b"", lang)
        tags = [t.strip(b" \t") for t in lang.split(b",") if t.strip(b" \t")][:MAX_PARAMS]
        if not tags:
            lang_out = NIL
        elif len(tags) == 1:
            lang_out = nstring(tags[0])
        else:
            lang_out = b"(" + b" ".join(nstring(t) for t in tags) + b")"
    else:
        lang_out = NIL
    return b"%b %b %b" % (dsp_out, lang_out, nstring(_hval(raw, hdr, b"content-location")))


def _lines(raw: bytes, b: int, e: int) -> int:
    """Text lines in raw[b:e], counted as line endings (as Dovecot and WildDuck do): the CRLF
    before a boundary belongs to the delimiter, so a part's last line is not counted."""
    return raw.count(b"\n", b, e) if e > b else 0


def _structure(raw: bytes, node: _Node) -> tuple[bytes, bytes]:
    """Return (BODY, BODYSTRUCTURE) of `node`."""
    if node.kind == _MULTIPART:
        bodies, structs = [], []
        for child in node.children:
            body, struct = _structure(raw, child)
            bodies.append(body)
            structs.append(struct)
        sub = nstring(node.subtype)
        return (
            b"(%b %b)" % (b"".join(bodies), sub),
            b"(%b %b %b %b)"
            % (b"".join(structs), sub, _param_list(node.params), _extension(raw, node)),
        )
    hdr = node.hdr
    params = node.params
    if node.maintype == b"text" and not params:
        params = _TEXT_PLAIN_DEFAULT
    fields = b"(%b %b %b %b %b %b %d" % (
        nstring(node.maintype),
        nstring(node.subtype),
        _param_list(params),
        nstring(_hval(raw, hdr, b"content-id")),
        nstring(_hval(raw, hdr, b"content-description")),
        nstring(node.cte),
        node.e - node.b,
    )
    if node.kind == _MESSAGE and node.message is not None:
        inner = node.message
        envelope = _envelope(raw, inner.hdr)
        ibody, istruct = _structure(raw, inner)
        lines = _lines(raw, node.b, node.e)
        body = b"%b %b %b %d)" % (fields, envelope, ibody, lines)
        fields = b"%b %b %b %d" % (fields, envelope, istruct, lines)
    elif node.maintype == b"text":
        fields = b"%b %d" % (fields, _lines(raw, node.b, node.e))
        body = fields + b")"
    else:
        body = fields + b")"
    md5 = nstring(_hval(raw, hdr, b"content-md5"))
    return body, b"%b %b %b)" % (fields, md5, _extension(raw, node))


# ---------------------------------------------------------------------------------------------
# parts JSON and section lookup


def _ascii(b: bytes) -> str:
    # Controls become spaces, as NUL does in the IMAP strings, so "c" and BODYSTRUCTURE agree.
    return _CONTROLS.sub(" ", b.decode("ascii", "replace"))


def _disposition(raw: bytes, node: _Node) -> tuple[str, list[tuple[bytes, bytes]]]:
    dsp = _hval(raw, node.hdr, b"content-disposition")
    if not dsp:
        return "", []
    token, params = _split_type(dsp)
    return _ascii(token), params


def _json(raw: bytes, node: _Node) -> dict[str, Any]:
    d: dict[str, Any] = {
        "h": node.h,
        "b": node.b,
        "e": node.e,
        "t": f"{_ascii(node.maintype)}/{_ascii(node.subtype)}",
        "c": _ascii(node.cte),
    }
    if node.kind == _MULTIPART:
        d["p"] = [_json(raw, child) for child in node.children]
        return d
    if node.kind == _MESSAGE and node.message is not None:
        d["m"] = _json(raw, node.message)
        return d
    dsp, dparams = _disposition(raw, node)
    if dsp:
        d["d"] = dsp
    if node.maintype == b"text":
        charset = _param_text(node.params, b"charset")
        if charset:
            d["cs"] = charset
    filename = _param_text(dparams, b"filename") or _param_text(node.params, b"name")
    if filename:
        d["fn"] = filename
    cid = _hval(raw, node.hdr, b"content-id")
    if cid:
        d["id"] = _clean(_text(cid, None))
    return d


def find_section(parts: dict[str, Any], section: Sequence[int]) -> SectionSpan | None:
    """Return the offsets for BODY[section], or None when the message has no such part.

    `section` is the numeric part of an IMAP section spec: () for the whole message, (1, 2)
    for BODY[1.2]. Numbering follows RFC 3501 §6.4.5: the parts of a multipart are 1..n; a
    non-multipart message (or part) has only part 1, itself; a number after a message/rfc822
    part descends into the encapsulated message.
    """
    if not isinstance(parts, dict) or "b" not in parts or len(section) > 2 * MAX_DEPTH + 2:
        return None
    node = parts
    if not section:
        return SectionSpan(
            start=node["h"],
            end=node["e"],
            mime=None,
            header=(node["h"], node["b"]),
            text=(node["b"], node["e"]),
            content_type=node["t"],
            cte=node["c"],
        )
    last = len(section) - 1
    for i, num in enumerate(section):
        if not isinstance(num, int) or num < 1:
            return None
        if "p" in node:
            children = node["p"]
            if num > len(children):
                return None
            node = children[num - 1]
        elif num != 1:
            return None
        if i < last and "m" in node:
            node = node["m"]
    header = text = None
    if "m" in node:
        inner = node["m"]
        header, text = (inner["h"], inner["b"]), (inner["b"], inner["e"])
    return SectionSpan(
        start=node["b"],
        end=node["e"],
        mime=(node["h"], node["b"]),
        header=header,
        text=text,
        content_type=node["t"],
        cte=node["c"],
    )


# ---------------------------------------------------------------------------------------------
# Body decoding (RFC 2045 §6, RFC 3516 BINARY)


def decode_part_body(raw_part_body: bytes, cte: str) -> bytes:
    """Undo a Content-Transfer-Encoding, tolerating garbage; unknown CTEs return the input.

    base64: junk bytes are skipped and padding repaired; quoted-printable: invalid escapes are
    kept literally. Callers check KNOWN_CTES to answer RFC 3516 [UNKNOWN-CTE].
    """
    enc = cte.strip().lower() if isinstance(cte, str) else ""
    if enc == "base64":
        return _b64decode(raw_part_body)
    if enc == "quoted-printable":
        try:
            return binascii.a2b_qp(raw_part_body)
        except (binascii.Error, ValueError):
            return raw_part_body
    return raw_part_body


# ---------------------------------------------------------------------------------------------
# Derived fields: subject, threading ids, preview, attachments

_MSGID = re.compile(rb"<([^<>]*)>")
_SPACES = re.compile(rb"[ \t\r\n]+")
_SUBJ_WS = re.compile(r"[ \t]+")
# RFC 5256 §5 (ABNF for base subject extraction)
_BLOB = r"\[[^\[\]]*\][ \t]*"
_SUBJ_LEADER = re.compile(
    r"(?:[ \t]+|(?:" + _BLOB + r")*(?:re|fwd?)[ \t]*(?:" + _BLOB + r")?:)", re.I
)
_SUBJ_BLOB = re.compile(_BLOB)
_MAX_REFERENCES = 1000


def base_subject(subject: str) -> str:
    """Return the RFC 5256 §2.1 base subject of an already RFC 2047-decoded subject."""
    s = _SUBJ_WS.sub(" ", subject.replace("\r", " ").replace("\n", " "))  # step 1
    # Indices, not slicing: a subject of 100,000 "Re: " must not cost quadratic time.
    start, end = 0, len(s)
    while True:
        while True:  # step 2: trailing "(fwd)" and WSP
            while end > start and s[end - 1] in " \t":
                end -= 1
            if end - start >= 5 and s[end - 5 : end].lower() == "(fwd)":
                end -= 5
                continue
            break
        while True:  # steps 3-5
            before = start
            while (m := _SUBJ_LEADER.match(s, start, end)) and m.end() > start:  # step 3
                start = m.end()
            # Step 4: a blob, unless it is all that is left. When step 3 found no leader
            # here, it finds none after a blob either, so all leading blobs can go at once.
            while (m := _SUBJ_BLOB.match(s, start, end)) and m.end() < end:
                start = m.end()
            if start == before:
                break
        if end - start >= 6 and s[start : start + 5].lower() == "[fwd:" and s[end - 1] == "]":
            start, end = start + 5, end - 1  # step 6, then again from step 2
            continue
        return s[start:end]


def _msgids(value: bytes | None) -> list[str]:
    if not value:
        return []
    out = []
    for m in _MSGID.finditer(value):
        inner = _SPACES.sub(b"", m.group(1))  # CFWS inside obs-id-left/right
        if inner:
            out.append(_clean(_text(b"<" + inner + b">", None)))
    return out


_HTML_SKIP = ("script", "style", "title")
_TAG_NAME = re.compile(r"[a-z0-9]+")
# Invisible characters (soft hyphen, zero-width spaces and joiners, BOM) and decoding
# replacement characters, dropped from previews; controls become spaces.
_PREVIEW_JUNK = re.compile(r"[\u00ad\u034f\u200b-\u200f\u2060\ufeff\ufffd]")


def _html_text(s: str) -> str:
    """Text of an HTML fragment for a preview: tags, comments, script/style dropped."""
    low = s.lower()
    n = len(s)
    out = []
    pos = 0
    while pos < n:
        i = s.find("<", pos)
        if i < 0:
            out.append(s[pos:])
            break
        out.append(s[pos:i])
        if low.startswith("<!--", i):
            j = s.find("-->", i + 4)
            pos = n if j < 0 else j + 3
            out.append(" ")
            continue
        nxt = low[i + 1 : i + 2]
        if not nxt or not (nxt.isalpha() or nxt in "/!?"):
            out.append("<")
            pos = i + 1
            continue
        j = s.find(">", i + 1)
        if j < 0:
            break
        pos = j + 1
        m = _TAG_NAME.match(low, i + 1)
        if m and m.group() in _HTML_SKIP:
            k = low.find("</" + m.group(), pos)
            if k < 0:
                break
            j = s.find(">", k)
            pos = n if j < 0 else j + 1
        out.append(" ")
    return html.unescape("".join(out))


def _walk(node: _Node, into_messages: bool) -> Iterable[_Node]:
    stack = [node]
    while stack:
        n = stack.pop()
        if n.kind == _MULTIPART:
            stack.extend(reversed(n.children))
        elif n.kind == _MESSAGE:
            if into_messages and n.message is not None:
                stack.append(n.message)
        else:
            yield n


def _collapse(text: str, limit: int) -> str:
    """Return the first `limit` characters of `text` with whitespace runs collapsed,
    looking only at as much of `text` as that needs."""
    chunk = 512
    while True:
        head = _PREVIEW_JUNK.sub("", _CONTROLS.sub(" ", text[:chunk]))
        s = " ".join(head.split())
        if len(s) > limit or chunk >= len(text):
            return s[:limit].strip()
        chunk *= 8


def _preview(raw: bytes, root: _Node) -> str:
    for into_messages in (False, True):
        plain = html_part = None
        for leaf in _walk(root, into_messages):
            if leaf.maintype != b"text":
                continue
            if _disposition(raw, leaf)[0].lower() == "attachment":
                continue
            if leaf.subtype == b"plain":
                plain = leaf
                break
            if leaf.subtype == b"html" and html_part is None:
                html_part = leaf
        leaf = plain or html_part
        if leaf is None:
            continue
        charset, _ = _param_lookup(leaf.params, b"charset")
        cte = _ascii(leaf.cte)
        size = 4096 if leaf is plain else 32768  # of raw body; grows if that is not enough
        while True:
            end = min(leaf.e, leaf.b + size)
            text = _decode_charset(decode_part_body(raw[leaf.b : end], cte), charset)
            if leaf is html_part:
                text = _html_text(text)
            preview = _collapse(text, PREVIEW_CHARS)
            if len(preview) >= PREVIEW_CHARS or end >= leaf.e or size >= 1 << 20:
                return preview
            size *= 8
    return ""


_SIGNATURES = {
    (b"application", b"pgp-signature"),
    (b"application", b"pgp-encrypted"),
    (b"application", b"pkcs7-signature"),
    (b"application", b"x-pkcs7-signature"),
}


def _has_attachments(raw: bytes, root: _Node) -> bool:
    stack: list[tuple[_Node, bool]] = [(root, False)]
    while stack:
        node, in_related = stack.pop()
        if node.kind == _MULTIPART:
            related = node.subtype == b"related"
            stack.extend((c, related) for c in node.children)
            continue
        if node is not root and node.kind == _MESSAGE:
            return True  # a forwarded message is an attachment to show
        if node.kind == _MESSAGE or (node.maintype, node.subtype) in _SIGNATURES:
            continue
        dsp, dparams = _disposition(raw, node)
        dsp = dsp.lower()
        if dsp == "attachment":
            return True
        named = _param_lookup(dparams, b"filename")[0] or _param_lookup(node.params, b"name")[0]
        if named and not (in_related and b"content-id" in node.hdr):
            return True
        if node.maintype != b"text" and dsp != "inline" and not in_related:
            return True
    return False


# ---------------------------------------------------------------------------------------------
# Entry point


def _parse_date(value: bytes | None) -> datetime | None:
    if not value:
        return None
    try:
        dt = parsedate_to_datetime(value.decode("ascii", "replace"))
    except Exception:
        return None
    if dt is None:
        return None
    if dt.tzinfo is None:  # "-0000": time in UTC, zone unknown (RFC 5322 §3.3)
        dt = dt.replace(tzinfo=UTC)
    return dt


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse `raw` (one message, exact bytes as stored). Never raises."""
    try:
        return _parse(bytes(raw))
    except Exception:  # a bug, not bad mail: keep delivering, with a minimal structure
        log.exception("parse_message failed on a %d-byte message", len(raw))
        return _fallback(bytes(raw))


def _parse(raw: bytes) -> ParsedMessage:
    parser = _Parser(raw)
    root, _ = parser.entity(0, 0, False)
    hdr = root.hdr
    addr_cache: dict[bytes, list[_Address]] = {}
    envelope = _envelope(raw, hdr, addr_cache)
    body, bodystructure = _structure(raw, root)

    subject = decode_header_value(_hval(raw, hdr, b"subject") or b"")
    from_ = addr_cache[b"from"]
    first = next((a for a in from_ if not a.group), None)
    from_addr = first.addr_spec().lower()[:320] if first else ""
    from_display = (first.display_name or first.addr_spec()) if first else ""
    raw_message_id = _hval(raw, hdr, b"message-id")
    message_ids = _msgids(raw_message_id)
    in_reply_to = _msgids(_hval(raw, hdr, b"in-reply-to"))
    references = _msgids(_hval(raw, hdr, b"references"))[-_MAX_REFERENCES:]
    parts = _json(raw, root)
    parts["v"] = PARTS_VERSION
    return ParsedMessage(
        size=len(raw),
        envelope=envelope,
        body=body,
        bodystructure=bodystructure,
        parts=parts,
        header_end=root.b,
        subject=subject,
        from_display=from_display,
        from_addr=from_addr,
        to=_address_display(addr_cache[b"to"]),
        cc=_address_display(addr_cache[b"cc"]),
        bcc=_address_display(addr_cache[b"bcc"]),
        date=_parse_date(_hval(raw, hdr, b"date")),
        message_id=message_ids[0] if message_ids else _clean(_text(raw_message_id or b"", None)),
        in_reply_to=in_reply_to[0] if in_reply_to else "",
        references=references,
        base_subject=base_subject(subject),
        has_attachments=_has_attachments(raw, root),
        preview=_preview(raw, root),
    )


def _fallback(raw: bytes) -> ParsedMessage:
    """The structure of an unparseable message: one text/plain part after the first blank
    line. Only reached through a bug in _parse; kept trivially simple."""
    n = len(raw)
    i = raw.find(b"\n\n")
    j = raw.find(b"\n\r\n")
    ends = [k for k in (i + 2 if i >= 0 else -1, j + 3 if j >= 0 else -1) if k >= 0]
    b = min(ends) if ends else n
    lines = _lines(raw, b, n)
    body = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" %d %d)' % (n - b, lines)
    return ParsedMessage(
        size=n,
        envelope=b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
        body=body,
        bodystructure=body[:-1] + b" NIL NIL NIL NIL)",
        parts={"v": PARTS_VERSION, "h": 0, "b": b, "e": n, "t": "text/plain", "c": "7bit"},
        header_end=b,
        subject="",
        from_display="",
        from_addr="",
        to="",
        cc="",
        bcc="",
        date=None,
        message_id="",
        in_reply_to="",
        references=[],
        base_subject="",
        has_attachments=False,
        preview="",
    )
