"""Modified UTF-7 for mailbox names (RFC 3501 §5.1.3), used until UTF8=ACCEPT / IMAP4rev2."""

from __future__ import annotations

import base64
import binascii


class InvalidUtf7(ValueError):
    """The name is not valid modified UTF-7."""


def encode(name: str, also: str = "") -> str:
    """Return `name` in modified UTF-7: printable ASCII as is, `&` as `&-`, the rest in `&...-`.

    Characters in `also` are base64-encoded although printable (Maildir++ encodes `.`, its
    hierarchy separator, that way).
    """
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            data = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(data).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E and ch not in also:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def decode(text: str, *, strict: bool = True) -> str:
    """Return the Unicode name for modified UTF-7 `text`; raise InvalidUtf7 when malformed.

    `strict=False` accepts printable ASCII inside a base64 run (Maildir++ writes `.` so).
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ord(ch) > 0x7E or ord(ch) < 0x20:
            raise InvalidUtf7("8-bit or control character in a modified UTF-7 name")
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        end = text.find("-", i + 1)
        if end < 0:
            raise InvalidUtf7("unterminated base64 run")
        chunk = text[i + 1 : end]
        if not chunk:
            out.append("&")
        else:
            b64 = chunk.replace(",", "/")
            b64 += "=" * (-len(b64) % 4)
            try:
                data = base64.b64decode(b64, validate=True)
                decoded = data.decode("utf-16-be")
            except (binascii.Error, UnicodeDecodeError, ValueError) as e:
                raise InvalidUtf7("bad base64 run") from e
            # RFC 3501 §5.1.3: printable ASCII must not be encoded; the run must be canonical.
            if strict and (
                any(0x20 <= ord(c) <= 0x7E for c in decoded) or encode(decoded) != "&" + chunk + "-"
            ):
                raise InvalidUtf7("non-canonical modified UTF-7")
            out.append(decoded)
        i = end + 1
    return "".join(out)
