"""Mailbox names: `/` is the hierarchy delimiter; INBOX is case-insensitive (RFC 3501 §5.1)."""

from __future__ import annotations

from .errors import InvalidMailboxName

DELIMITER = "/"
MAX_NAME = 1000
MAX_DEPTH = 32


def normalize(name: str) -> str:
    """Return the canonical form: `inbox` and `Inbox/x` become `INBOX` and `INBOX/x`."""
    head, sep, rest = name.partition(DELIMITER)
    if head.upper() == "INBOX":
        return "INBOX" + sep + rest
    return name


def validate(name: str) -> str:
    """Return the normalised name or raise InvalidMailboxName."""
    name = normalize(name)
    if not name or len(name.encode()) > MAX_NAME:
        raise InvalidMailboxName("Mailbox name is empty or too long")
    parts = name.split(DELIMITER)
    if any(not p for p in parts) or len(parts) > MAX_DEPTH:
        raise InvalidMailboxName("Mailbox name has an empty level or is nested too deep")
    if any(ch in "*%" or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise InvalidMailboxName("Mailbox name contains a wildcard or control character")
    return name


def parents(name: str) -> list[str]:
    """`a/b/c` -> [`a`, `a/b`]."""
    parts = name.split(DELIMITER)
    return [DELIMITER.join(parts[:i]) for i in range(1, len(parts))]
