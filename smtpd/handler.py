"""aiosmtpd hooks for the MX (port 25) and submission (587/465) listeners.

Decisions come from smtpd.policy; every database touch goes through run_db; message
bytes go to mailhost.store (local recipients) or mailhost.queue (the rest). A reply of
250 after DATA means each local copy is committed and each remote recipient is queued.
"""

from __future__ import annotations

import logging

from aiosmtpd.smtp import Envelope, Session
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from mailhost import outbound_dkim, queue, queue_dsn, store
from mailhost.dbpool import run_db
from mailhost.mail import address as addr
from mailhost.store.delivery import is_local_domain
from mailhost.store.values import RecipientResult

from . import headers, local, policy, replies, verify
from .sasl import SaslHooks

log = logging.getLogger(__name__)

MX, SUBMISSION = "mx", "submission"


class SMTPHandler(SaslHooks):
    """`mode` is MX (AUTH optional, relaying only when authenticated) or SUBMISSION."""

    def __init__(self, mode: str = MX) -> None:
        self.mode = mode

    async def handle_EHLO(  # noqa: N802
        self, server, session: Session, envelope: Envelope, hostname: str, responses: list
    ) -> list[str]:
        session.host_name = hostname
        lines = [
            r for r in responses if not (r[4:].startswith("AUTH") and not server.may_authenticate())
        ]
        # RFC 2920 PIPELINING (aiosmtpd reads commands in order, so it pipelines) and
        # RFC 2034 ENHANCEDSTATUSCODES, before the final "250 HELP".
        return lines[:-1] + ["250-PIPELINING", "250-ENHANCEDSTATUSCODES", lines[-1]]

    async def handle_MAIL(  # noqa: N802
        self, server, session: Session, envelope: Envelope, address: str, mail_options: list
    ) -> str:
        account = getattr(session, "account", None)
        if self.mode == SUBMISSION and account is None:
            return replies.R530_AUTH_REQUIRED
        mail_from = policy.envelope_address(address)
        if account is not None:
            if not policy.sender_owned(mail_from, getattr(session, "owned", ())):
                return replies.R553_SENDER_NOT_OWNED
            if not await run_db(_rate_ok, account.id):
                return replies.R451_RATE_LIMIT
        envelope.mail_from = address or "<>"
        envelope.mail_options.extend(mail_options)
        return replies.R250_SENDER_OK

    async def handle_RCPT(  # noqa: N802
        self, server, session: Session, envelope: Envelope, address: str, rcpt_options: list
    ) -> str:
        if len(envelope.rcpt_tos) >= settings.BUZON_SMTP_MAX_RECIPIENTS:
            return replies.R452_TOO_MANY_RECIPIENTS  # RFC 5321 §4.5.3.1.10
        if "@" not in address:
            return replies.R501_BAD_ADDRESS
        if policy.relay_hack(address, getattr(server, "last_rcpt_arg", "")):
            return replies.R554_RELAY_DENIED
        try:
            local_domain, refusal = await run_db(
                _rcpt_facts, address, policy.declared_size(envelope.mail_options)
            )
        except Exception:
            log.exception("RCPT lookup failed for %s", address)
            return replies.R451_TEMP_LOOKUP
        if local_domain:
            if refusal is not None:
                return refusal
            address = addr.normalize(address)
        elif getattr(session, "account", None) is None:
            return replies.R554_RELAY_DENIED
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return replies.R250_RCPT_OK

    async def handle_DATA(  # noqa: N802
        self, server, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or b""
        mail_from = policy.envelope_address(envelope.mail_from)
        account = getattr(session, "account", None)
        tls = ""
        if server.secure:
            cipher = server.transport.get_extra_info("cipher") if server.transport else None
            tls = f"{cipher[1]} {cipher[0]}" if cipher else "TLS"
        queue_id = headers.new_id()
        received = headers.received(
            helo=session.host_name or "",
            ip=server.peer_ip,
            protocol=policy.received_protocol(
                esmtp=bool(session.extended_smtp),
                tls=server.secure,
                auth=account is not None,
                utf8=bool(envelope.smtp_utf8),
            ),
            queue_id=queue_id,
            rcpts=list(envelope.rcpt_tos),
            tls=tls,
        )
        try:
            if account is not None:
                if not policy.from_header_owned(raw, getattr(session, "owned", ())):
                    return replies.R550_FROM_NOT_OWNED
                raw = received + headers.complete_submission(raw)
                return await run_db(
                    _submit, raw, mail_from, list(envelope.rcpt_tos), account.id, queue_id
                )
            return await self._inbound(server, session, envelope, raw, mail_from, received)
        except Exception:
            log.exception("DATA failed (%s)", queue_id)
            return replies.R451_LOCAL_ERROR

    async def _inbound(self, server, session, envelope, raw, mail_from, received) -> str:
        folder = "INBOX"
        added = received
        raw = verify.strip_forged_results(raw)
        if settings.BUZON_SMTP_VERIFY:
            try:
                verdict = await run_db(
                    verify.verify,
                    raw,
                    ip=server.peer_ip,
                    helo=session.host_name or "",
                    mail_from=mail_from,
                )
            except Exception:
                log.exception("message authentication failed to run")
                verdict = None
            if verdict is not None:
                if verdict.action == "reject":  # RFC 7489 §6.3 p=reject
                    return replies.R550_DMARC_REJECT
                if verdict.action == "quarantine":
                    folder = "Junk"
                added += verdict.header
        raw = added + raw
        results = await local.deliver(
            raw, mail_from=mail_from, rcpt_to=list(envelope.rcpt_tos), folder=folder
        )
        reply, failed = policy.data_reply(results)
        if failed and mail_from:
            await run_db(_report_failures, raw, mail_from, failed)
        return reply


class SubmissionHandler(SMTPHandler):
    def __init__(self) -> None:
        super().__init__(SUBMISSION)


# Sync helpers, run on the DB pool --------------------------------------------------------


def _rcpt_facts(address: str, size: int) -> tuple[bool, str | None]:
    """(is the domain ours?, the refusal reply or None when the recipient is taken)"""
    refusal = store.check_recipient(address, size)
    if refusal is None:  # the common case costs one lookup
        return True, None
    if refusal.enhanced == "5.1.1" and not is_local_domain(addr.split(address)[1]):
        return False, None  # not ours at all: the relay rules decide
    return True, refusal.reply


def _rate_key(account_id: int) -> str:
    return f"smtp:sent:{account_id}:{int(timezone.now().timestamp() // 3600)}"


def _rate_ok(account_id: int) -> bool:
    limit = settings.BUZON_SEND_RATE_PER_HOUR
    return not limit or (cache.get(_rate_key(account_id)) or 0) < limit


def _count_sent(account_id: int) -> None:
    key = _rate_key(account_id)
    if not cache.add(key, 1, 3600):
        try:
            cache.incr(key)
        except ValueError:
            cache.set(key, 1, 3600)


def _submit(raw: bytes, mail_from: str, rcpts: list[str], account_id: int, queue_id: str) -> str:
    """Deliver local recipients through the store and queue the rest (RFC 6409 §4)."""
    local = [r for r in rcpts if is_local_domain(addr.split(r)[1])]
    remote = [r for r in rcpts if r not in local]
    results: list[RecipientResult] = []
    if local:
        results = store.deliver(raw, mail_from=mail_from, rcpt_to=local)
        if not any(r.ok for r in results) and any(r.temporary for r in results):
            return next(r for r in results if r.temporary).reply  # retry it all; nothing kept
    if remote:
        qid = queue.enqueue(outbound_dkim.sign(raw), mail_from, remote, account_id=account_id)
        results += [RecipientResult(r, 250, "2.0.0", f"queued as {qid}") for r in remote]
        log.info("%s: queued as %s", queue_id, qid)
    _count_sent(account_id)
    reply, failed = policy.data_reply(results)
    if failed:
        _report_failures(raw, mail_from, failed)
    if not failed and remote:
        return f"250 2.0.0 OK: queued as {queue_id}"
    return reply


def _report_failures(raw: bytes, mail_from: str, failed: list[RecipientResult]) -> None:
    """Tell the sender about local recipients the store refused after we said 250."""
    now = timezone.now()
    dsn = queue_dsn.build(
        sender=mail_from,
        arrival=now,
        original=raw,
        recipients=[
            queue_dsn.RecipientStatus(
                address=r.rcpt,
                action="failed",
                status=r.enhanced if r.enhanced.startswith("5") else "5" + r.enhanced[1:],
                diagnostic=r.reply,
                remote_mta=settings.BUZON_HOSTNAME,
                last_attempt=now,
            )
            for r in failed
        ],
        now=now,
    )
    queue.send_notice(dsn, mail_from)
