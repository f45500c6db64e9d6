"""SASL mechanisms every protocol shares: PLAIN (RFC 4616) and LOGIN."""

from __future__ import annotations

import base64
import binascii


class SaslError(ValueError):
    """The client's SASL data is malformed (reply: a syntax error, not a failed login)."""


def b64decode(data: str | bytes) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as e:
        raise SaslError("Invalid base64 data") from e


def decode_plain(data: str | bytes) -> tuple[str, str, str]:
    """Return (authzid, authcid, password) from a base64 PLAIN response (RFC 4616 §2)."""
    raw = b64decode(data)
    parts = raw.split(b"\0")
    if len(parts) != 3:
        raise SaslError("PLAIN needs authzid NUL authcid NUL password")
    try:
        authzid, authcid, password = (p.decode("utf-8") for p in parts)
    except UnicodeDecodeError as e:
        raise SaslError("PLAIN credentials must be UTF-8") from e
    if not authcid or not password:
        raise SaslError("Empty user name or password")
    return authzid, authcid, password


def encode_plain(user: str, password: str, authzid: str = "") -> str:
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()
