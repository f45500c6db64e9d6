"""Serialise server responses (RFC 9051 §7): status lines, FETCH items, mailbox names."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from mailhost.mail import imapfmt, utf7

MONTHS = [
    b"Jan",
    b"Feb",
    b"Mar",
    b"Apr",
    b"May",
    b"Jun",
    b"Jul",
    b"Aug",
    b"Sep",
    b"Oct",
    b"Nov",
    b"Dec",
]


def status(tag: str | None, state: bytes, text: str, code: str | bytes | None = None) -> bytes:
    """`tag OK [CODE] text` (or `*` for an untagged status response)."""
    out = (tag.encode() if tag else b"*") + b" " + state + b" "
    if code:
        out += b"[" + (code.encode() if isinstance(code, str) else code) + b"] "
    return out + _text(text) + b"\r\n"


def _text(text: str) -> bytes:
    data = text.encode("utf-8", "replace")
    return data.replace(b"\r", b" ").replace(b"\n", b" ") or b"done"


def untagged(*parts: bytes) -> bytes:
    return b"* " + b" ".join(parts) + b"\r\n"


def flag_list(flags: Iterable[str]) -> bytes:
    return b"(" + " ".join(flags).encode("utf-8", "replace") + b")"


def internaldate(value: datetime) -> bytes:
    """RFC 9051 §9 date-time: "17-Jul-1996 02:44:25 +0000"."""
    v = value.astimezone(UTC)
    return b'"%2d-%s-%04d %02d:%02d:%02d +0000"' % (
        v.day,
        MONTHS[v.month - 1],
        v.year,
        v.hour,
        v.minute,
        v.second,
    )


def literal(data: bytes, *, binary: bool = False) -> bytes:
    """A literal with the bytes as stored (literal8 `~{n}` when asked, RFC 3516)."""
    return (b"~{%d}\r\n" if binary else b"{%d}\r\n") % len(data) + data


def mailbox(name: str, utf8: bool) -> bytes:
    """A mailbox name on the wire: UTF-8 after UTF8=ACCEPT/IMAP4rev2, else modified UTF-7."""
    if name.upper() == "INBOX":
        return b"INBOX"
    return imapfmt.astring(name if utf8 else utf7.encode(name))


def seqset(numbers: Sequence[int]) -> bytes:
    """Compress ascending numbers into a sequence-set: 1:3,7,9:10."""
    if not numbers:
        return b""
    out = []
    start = prev = numbers[0]
    for n in numbers[1:]:
        if n == prev + 1:
            prev = n
            continue
        out.append(b"%d" % start if start == prev else b"%d:%d" % (start, prev))
        start = prev = n
    out.append(b"%d" % start if start == prev else b"%d:%d" % (start, prev))
    return b",".join(out)
