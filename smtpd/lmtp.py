"""LMTP (RFC 2033): an existing MTA (Postfix) hands us mail as it would to Dovecot.

One reply per accepted recipient after DATA (RFC 2033 §4.2), each only after that
recipient's copy is committed by the store.
"""

from __future__ import annotations

import logging

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import Envelope, Session
from django.conf import settings

from mailhost import store
from mailhost.dbpool import run_db
from mailhost.mail import address as addr

from . import local, replies

log = logging.getLogger(__name__)


class LMTPHandler:
    """aiosmtpd hooks: RCPT checks the recipient exists; DATA delivers through the store."""

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, server, session: Session, envelope: Envelope, address: str, rcpt_options: list
    ) -> str:
        if "@" not in address:
            return replies.R501_BAD_ADDRESS
        try:
            refusal = await run_db(store.check_recipient, address)
        except Exception:
            log.exception("LMTP RCPT lookup failed for %s", address)
            return replies.R451_LOCAL_ERROR
        if refusal is not None:
            return refusal.reply
        envelope.rcpt_tos.append(addr.normalize(address))
        return replies.R250_RCPT_OK

    async def handle_DATA(  # noqa: N802
        self, server, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or b""
        try:
            results = await local.deliver(
                raw, mail_from=envelope.mail_from or "", rcpt_to=list(envelope.rcpt_tos)
            )
        except Exception:
            log.exception("LMTP delivery failed")
            return "\r\n".join(replies.R451_LOCAL_ERROR for _ in envelope.rcpt_tos)
        return "\r\n".join(r.reply for r in results)


class BuzonLMTP(LMTP):
    # The MTA in front of us already accepted this mail; like Dovecot's LMTP we take lines
    # longer than RFC 5321's 1000 octets rather than bounce what the MTA let through.
    line_length_limit = 1 << 16


def make_protocol(handler: LMTPHandler) -> LMTP:
    return BuzonLMTP(
        handler,
        hostname=settings.BUZON_HOSTNAME,
        ident="Buzón LMTP",
        data_size_limit=settings.BUZON_MAX_MESSAGE_SIZE,
        enable_SMTPUTF8=True,
        decode_data=False,
    )
