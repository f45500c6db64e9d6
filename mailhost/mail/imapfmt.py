"""IMAP wire syntax for values the server sends: NIL, numbers, strings, parenthesised lists.

RFC 3501 §4 / RFC 9051 §4. Everything returns bytes ready to be written to the socket.

Strings may be given as bytes or str. A str that holds raw 8-bit header bytes is carried as
``bytes.decode("utf-8", "surrogateescape")`` and is encoded back the same way, so the original
octets are what goes on the wire.

NUL: RFC 3501 §4.3 and RFC 9051 §4.3 exclude %x00 from quoted strings *and* from literals
(CHAR8 is %x01-ff); only literal8 (BINARY, RFC 3516) may carry it. A message header can
contain NUL anyway, so every string is sent with NUL replaced by a space. That keeps the
length (literal counts stay right) and cannot create syntax, unlike dropping or escaping it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["NIL", "Raw", "astring", "nstring", "number", "paren_list", "serialize", "string"]

NIL = b"NIL"

#: Longer strings are sent as literals even when they could be quoted: some clients cap the
#: length of a quoted string, none caps literals.
QUOTED_MAX = 1024

# RFC 3501 §9: QUOTED-CHAR is any TEXT-CHAR (CHAR minus CR/LF, CHAR = %x01-7F), with `"` and
# `\` escaped. 8-bit text is sent as a literal (RFC 9051 allows UTF-8 in quoted strings only
# after ENABLE UTF8=ACCEPT, which the caller does not tell us about).
_QUOTABLE = re.compile(rb"[\x01-\x09\x0b\x0c\x0e-\x7f]*")
# The common case needs no escaping: quotable and neither `"` nor `\`.
_PLAIN = re.compile(rb"[\x01-\x09\x0b\x0c\x0e-\x21\x23-\x5b\x5d-\x7f]*").fullmatch
# ATOM-CHAR: CHAR except atom-specials ( ) { SP CTL % * " \ ] (RFC 3501 §9).
_ATOM = re.compile(rb"[!#$&'+-\[^-z|}~]+")


@dataclass(frozen=True, slots=True)
class Raw:
    """Bytes that are already IMAP syntax (an atom like \\Seen, a serialised BODYSTRUCTURE)."""

    value: bytes


def _to_bytes(value: bytes | str) -> bytes:
    if isinstance(value, bytes):
        return value
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that surrogateescape did not make
        return value.encode("utf-8", "replace")


def string(value: bytes | str) -> bytes:
    """Return `value` as an IMAP string: quoted when safe and short, else a literal."""
    data = value if value.__class__ is bytes else _to_bytes(value)
    if len(data) <= QUOTED_MAX and _PLAIN(data) is not None:  # fast path, the usual case
        return b'"' + data + b'"'
    if b"\x00" in data:
        data = data.replace(b"\x00", b" ")  # see module docstring
    if len(data) <= QUOTED_MAX and _QUOTABLE.fullmatch(data):
        if b"\\" in data or b'"' in data:
            data = data.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
        return b'"' + data + b'"'
    return b"{%d}\r\n%b" % (len(data), data)


def nstring(value: bytes | str | None) -> bytes:
    """Return NIL for None, else `value` as an IMAP string (RFC 3501 §4.5)."""
    if value is None:
        return NIL
    return string(value)


def astring(value: bytes | str) -> bytes:
    """Return `value` as an atom when it is one (and not NIL), else as a string."""
    data = _to_bytes(value)
    if data and _ATOM.fullmatch(data) and data.upper() != NIL:
        return data
    return string(data)


def number(value: int) -> bytes:
    """Return a non-negative number (RFC 3501 §4.2); negative input is clamped to 0."""
    return b"%d" % max(int(value), 0)


def paren_list(items: Iterable[bytes]) -> bytes:
    """Join already-serialised items into a parenthesised, space-separated list."""
    return b"(" + b" ".join(items) + b")"


def serialize(obj: object) -> bytes:
    """Serialise nested lists/tuples of None, int, str, bytes and Raw to IMAP syntax.

    None is NIL, int a number, str/bytes a string (quoted or literal), list/tuple a
    parenthesised list, Raw is copied verbatim. Anything else raises TypeError: that is a
    programming error, not bad mail.
    """
    if obj is None:
        return NIL
    if isinstance(obj, (bytes, str)):
        return string(obj)
    if isinstance(obj, Raw):
        return obj.value
    if isinstance(obj, bool):
        raise TypeError("bool is not an IMAP value")
    if isinstance(obj, int):
        return number(obj)
    if isinstance(obj, (list, tuple)):
        return b"(" + b" ".join([serialize(item) for item in obj]) + b")"
    raise TypeError(f"cannot serialise {type(obj).__name__} as IMAP")
