"""Header fields the SMTP server adds: Received (RFC 5321 §4.4), and for submission the
Date and Message-ID a client left out (RFC 6409 §8.2, §8.3). Added fields are prepended;
the client's bytes are never rewritten."""

from __future__ import annotations

import re
import secrets
from email.utils import format_datetime, make_msgid

from django.conf import settings
from django.utils import timezone

from . import policy


def new_id() -> str:
    return secrets.token_hex(8).upper()


def received(
    *,
    helo: str,
    ip: str,
    protocol: str,
    queue_id: str,
    rcpts: list[str],
    tls: str = "",
) -> bytes:
    """A Received field; `for` only with one recipient (others stay private)."""
    host = settings.BUZON_HOSTNAME
    lines = [f"Received: from {policy.printable(helo) or 'unknown'} ([{ip}])"]
    by = f"\tby {host} (Buzon) with {protocol} id {queue_id}"
    if tls:
        by += f" ({policy.printable(tls, 100)})"
    lines.append(by)
    if len(rcpts) == 1 and rcpts[0].isascii():
        lines.append(f"\tfor <{policy.printable(rcpts[0], 300)}>;")
    else:
        lines[-1] += ";"
    lines.append(f"\t{format_datetime(timezone.now())}")
    return ("\r\n".join(lines) + "\r\n").encode("ascii", "replace")


def _has_field(raw: bytes, name: bytes) -> bool:
    end = raw.find(b"\r\n\r\n")
    head = b"\r\n" + (raw if end < 0 else raw[:end])
    return re.search(rb"\r\n" + re.escape(name) + rb"[ \t]*:", head, re.IGNORECASE) is not None


def complete_submission(raw: bytes) -> bytes:
    """Prepend Date and Message-ID when missing (RFC 6409 §8)."""
    added = b""
    if not _has_field(raw, b"date"):
        added += f"Date: {format_datetime(timezone.now())}\r\n".encode()
    if not _has_field(raw, b"message-id"):
        added += f"Message-ID: {make_msgid(domain=settings.BUZON_HOSTNAME)}\r\n".encode()
    return added + raw
