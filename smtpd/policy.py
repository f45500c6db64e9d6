"""Pure decisions of the SMTP server: no sockets, no ORM (callers fetch the facts).

- Relay: only authenticated sessions may send to domains we do not host (RFC 5321 §3.6.2).
  Local parts that smuggle another route (`a%b@us`, `a!b@us`, `"a@b"@us`) and source
  routes (RFC 5321 §4.1.1.3, Appendix C) are refused outright, whoever asks.
- Submission (RFC 6409 §6.1): the envelope sender and the From: header must be addresses
  the authenticated account owns.
- Results from the store become one SMTP reply after DATA (RFC 5321 §4.2.5): 250 only when
  every local recipient's copy is committed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses

from mailhost.mail import address as addr
from mailhost.store.values import RecipientResult

_ROUTE_CHARS = set("@%!")


def null_sender(mail_from: str | None) -> bool:
    return mail_from in (None, "", "<>")


def envelope_address(mail_from: str | None) -> str:
    """aiosmtpd hands us `<>` for the null reverse-path; we keep it as ""."""
    return "" if null_sender(mail_from) else str(mail_from)


def relay_hack(address: str, raw_arg: str = "") -> bool:
    """A `%`-hack, bang path, quoted local part carrying a route, or an explicit source route."""
    if re.search(r"<\s*@", raw_arg or ""):  # <@hop1,@hop2:user@domain>
        return True
    local, _sep, _domain = address.rpartition("@")
    if local.startswith('"') and local.endswith('"') and len(local) >= 2:
        local = local[1:-1]
    return any(c in _ROUTE_CHARS for c in local)


def header_from_addresses(raw: bytes) -> list[str]:
    """The addresses in every From: field of the header (normalised)."""
    end = raw.find(b"\r\n\r\n")
    head = raw if end < 0 else raw[: end + 4]
    headers = BytesHeaderParser(policy=compat32).parsebytes(head)
    values = [str(v) for v in headers.get_all("From", [])]
    return [addr.normalize(a) for _n, a in getaddresses(values) if a]


def sender_owned(mail_from: str, owned: Iterable[str]) -> bool:
    """RFC 6409 §6.1: the account may send as its own address or an alias leading to it."""
    return not null_sender(mail_from) and addr.normalize(mail_from) in set(owned)


def from_header_owned(raw: bytes, owned: Iterable[str]) -> bool:
    found = header_from_addresses(raw)
    owned = set(owned)
    return bool(found) and all(a in owned for a in found)


def data_reply(results: Sequence[RecipientResult]) -> tuple[str, list[RecipientResult]]:
    """One reply for all local recipients; also the failures to report by DSN.

    All committed: 250. None committed: a temporary failure wins (the client retries the
    whole message), else the first permanent one. Some committed: 250, and the recipients
    the store refused are reported to the sender in a DSN (we took responsibility).
    """
    ok = [r for r in results if r.ok]
    failed = [r for r in results if not r.ok]
    if not failed:
        return "250 2.0.0 OK: delivered", []
    if not ok:
        temporary = [r for r in failed if r.temporary]
        return (temporary or failed)[0].reply, []
    return "250 2.0.0 OK: delivered to some recipients; a DSN reports the others", failed


def dmarc_action(result: str, policy: str) -> str:
    """RFC 7489 §6.3 p=: "reject", "quarantine" or "accept" for a DMARC verdict."""
    if result != "fail":
        return "accept"
    if policy == "reject":
        return "reject"
    if policy == "quarantine":
        return "quarantine"
    return "accept"


def received_protocol(*, esmtp: bool, tls: bool, auth: bool, utf8: bool) -> str:
    """`with` keyword of the Received field (RFC 3848; RFC 6531 §3.7.3 for UTF8SMTP)."""
    if utf8:
        return "UTF8SMTP" + ("S" if tls else "") + ("A" if auth else "")
    if not esmtp:
        return "SMTP"
    return "ESMTP" + ("S" if tls else "") + ("A" if auth else "")


def printable(text: str, limit: int = 200) -> str:
    """Text safe to put in a header comment: printable ASCII, no parentheses or CR/LF."""
    cleaned = "".join(c if 32 < ord(c) < 127 and c not in "()\\" else "?" for c in text)
    return cleaned[:limit]


def declared_size(mail_options: Iterable[str]) -> int:
    """The SIZE= a client declared at MAIL FROM (RFC 1870 §4), or 0."""
    for option in mail_options:
        name, _, value = option.partition("=")
        if name.upper() == "SIZE" and value.isdigit():
            return int(value)
    return 0
