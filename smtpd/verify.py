"""Inbound message authentication: SPF (RFC 7208), DKIM (RFC 6376), DMARC (RFC 7489).

Uses pyspf, dkimpy and authheaders; all DNS goes through smtpd.dns (its resolver is
dnspython's default). The verdicts become one Authentication-Results field (RFC 8601)
that names us as the authserv-id. Sync: call it through run_db, never on the event loop.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import authheaders
from authres import AuthenticationResultsHeader, DKIMAuthenticationResult
from django.conf import settings

from . import dns as smtp_dns
from . import policy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    header: bytes  # "Authentication-Results: ...\r\n"
    spf: str
    dkim: str
    dmarc: str
    dmarc_policy: str

    @property
    def action(self) -> str:
        return policy.dmarc_action(self.dmarc, self.dmarc_policy)


def _has_dkim_signature(raw: bytes) -> bool:
    end = raw.find(b"\r\n\r\n")
    head = raw if end < 0 else raw[:end]
    return re.search(rb"(?im)^dkim-signature\s*:", head) is not None


def verify(raw: bytes, *, ip: str, helo: str, mail_from: str) -> Verdict:
    """Check SPF for the envelope, DKIM for the content, DMARC for the From: domain."""
    smtp_dns.resolver()  # installs the configured resolver as dnspython's default
    try:
        spf = authheaders.check_spf(ip, mail_from, helo)
    except Exception:  # pyspf raises on odd input (e.g. an IPv6 scope); never fail the mail
        log.exception("SPF check failed")
        spf = authheaders.SPFAuthenticationResult(
            result="temperror", smtp_mailfrom=mail_from, smtp_helo=helo
        )
    if _has_dkim_signature(raw):
        dkim = authheaders.check_dkim(raw)
    else:
        dkim = DKIMAuthenticationResult(result="none")
    try:
        dmarc = authheaders.check_dmarc(raw, spf, dkim)
    except Exception:
        log.exception("DMARC check failed")
        dmarc = None
    results = [r for r in (spf, dkim, dmarc) if r is not None]
    header = AuthenticationResultsHeader(authserv_id=settings.BUZON_HOSTNAME, results=results)
    text = " ".join(str(header).split())  # one line, then fold at spaces
    return Verdict(
        header=_fold(text).encode("utf-8", "replace") + b"\r\n",
        spf=str(spf.result or "none"),
        dkim=str(dkim.result or "none"),
        dmarc=str(getattr(dmarc, "result", None) or "none"),
        dmarc_policy=str(getattr(dmarc, "policy", None) or ""),
    )


def _fold(text: str, width: int = 76) -> str:
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = "\t" + word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "\r\n".join(lines)


def strip_forged_results(raw: bytes) -> bytes:
    """Drop Authentication-Results fields naming our authserv-id (RFC 8601 §5): only we
    may speak for us."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        return raw
    head, body = raw[: end + 2], raw[end + 2 :]
    ours = settings.BUZON_HOSTNAME.lower().encode()
    fields = re.split(rb"\r\n(?![ \t])", head[:-2])
    kept = []
    for field in fields:
        name, _, value = field.partition(b":")
        if name.strip().lower() == b"authentication-results":
            authserv = value.strip().split(b";")[0].split()[0:1]
            if authserv and authserv[0].lower() == ours:
                continue
        kept.append(field)
    if len(kept) == len(fields):
        return raw
    return b"\r\n".join(kept) + b"\r\n" + body
