"""IMAP flags <-> the Message row's bit set and keyword list (RFC 3501 §2.3.2)."""

from __future__ import annotations

from collections.abc import Iterable

SYSTEM_FLAGS = {
    "\\seen": (1, "\\Seen"),
    "\\answered": (2, "\\Answered"),
    "\\flagged": (4, "\\Flagged"),
    "\\deleted": (8, "\\Deleted"),
    "\\draft": (16, "\\Draft"),
}
SEEN, ANSWERED, FLAGGED, DELETED, DRAFT = 1, 2, 4, 8, 16
_BIT_NAMES = [(bit, name) for bit, name in SYSTEM_FLAGS.values()]
MAX_KEYWORDS = 64


def split(flags: Iterable[str]) -> tuple[int, frozenset[str]]:
    """Return (system flag bits, keywords). \\Recent and unknown \\flags are dropped."""
    bits, keywords = 0, set()
    for flag in flags:
        known = SYSTEM_FLAGS.get(flag.lower())
        if known:
            bits |= known[0]
        elif flag and not flag.startswith("\\"):
            keywords.add(flag)
    return bits, frozenset(keywords)


_JOINED: dict[tuple[int, str], tuple[str, ...]] = {}  # rows have few distinct flag sets


def join(bits: int, keywords: str | Iterable[str]) -> tuple[str, ...]:
    """Return the flag names, system flags first, in a stable order."""
    if isinstance(keywords, str):
        hit = _JOINED.get((bits, keywords))
        if hit is not None:
            return hit
        names = _join(bits, keywords.split())
        if len(_JOINED) < 4096:
            _JOINED[(bits, keywords)] = names
        return names
    return _join(bits, keywords)


def _join(bits: int, keywords: Iterable[str]) -> tuple[str, ...]:
    names = [name for bit, name in _BIT_NAMES if bits & bit]
    names.extend(sorted(keywords))
    return tuple(names)


def encode_keywords(keywords: Iterable[str]) -> str:
    return " ".join(sorted(set(keywords)))


def decode_keywords(text: str) -> frozenset[str]:
    return frozenset(text.split())
