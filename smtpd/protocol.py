"""aiosmtpd's SMTP with Buzón's limits and the parts aiosmtpd leaves out.

- DATA (RFC 5321 §4.1.1.4, §4.5.2): only <CRLF>.<CRLF> ends it; a bare CR or bare LF
  anywhere in the data refuses the message once it has ended (as Postfix's
  smtpd_forbid_bare_newline), so nobody can smuggle a second message past a server that
  ends DATA differently (SMTP smuggling, 2023). SIZE is enforced while reading.
- Limits: line length (BUZON_SMTP_MAX_LINE_LENGTH), command length (aiosmtpd, 512 octets
  per RFC 5321 §4.5.3.1.4), connections per IP, errors per session (then 421), idle and
  DATA timeouts (RFC 5321 §4.5.3.2) answered with 421 before closing.
- Enhanced status codes (RFC 2034 §3) on every reply except the greeting and EHLO/HELO.
- AUTH (RFC 4954) only under TLS (STARTTLS or implicit TLS), never inside a transaction.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter

from aiosmtpd.smtp import SMTP
from django.conf import settings

from . import replies

log = logging.getLogger(__name__)

# RFC 3463 defaults for replies aiosmtpd writes without an enhanced code.
ENHANCED_DEFAULTS = {
    "214": "2.0.0",
    "220": "2.0.0",
    "221": "2.0.0",
    "235": "2.7.0",
    "250": "2.0.0",
    "252": "2.5.0",
    "421": "4.7.0",
    "450": "4.2.0",
    "451": "4.3.0",
    "452": "4.5.3",
    "454": "4.7.0",
    "500": "5.5.2",
    "501": "5.5.4",
    "502": "5.5.1",
    "503": "5.5.1",
    "504": "5.5.4",
    "530": "5.7.0",
    "535": "5.7.8",
    "538": "5.7.11",
    "550": "5.0.0",
    "552": "5.3.4",
    "553": "5.1.3",
    "554": "5.0.0",
    "555": "5.5.4",
}
_HAS_ENHANCED = re.compile(r"^\d{3}[ -]\d\.\d{1,3}\.\d{1,3}(\s|$)")


class ConnectionTracker:
    """Open sessions per client IP for one listener."""

    def __init__(self, limit: int) -> None:
        self.limit, self.open = limit, Counter()

    def admit(self, ip: str) -> bool:
        if self.limit and self.open[ip] >= self.limit:
            return False
        self.open[ip] += 1
        return True

    def leave(self, ip: str) -> None:
        self.open[ip] -= 1
        if self.open[ip] <= 0:
            del self.open[ip]


class BuzonSMTP(SMTP):
    local_part_limit = 64  # RFC 5321 §4.5.3.1.1

    def __init__(
        self,
        handler,
        *,
        tracker: ConnectionTracker | None = None,
        implicit_tls: bool = False,
        **kwargs,
    ) -> None:
        # aiosmtpd sizes its stream reader from this before reading any line.
        self.line_length_limit = settings.BUZON_SMTP_MAX_LINE_LENGTH
        super().__init__(handler, auth_require_tls=False, **kwargs)
        self.tracker, self.implicit_tls = tracker, implicit_tls
        self.max_errors = settings.BUZON_SMTP_MAX_ERRORS
        self.data_timeout = float(settings.BUZON_SMTP_DATA_TIMEOUT)
        self.errors = 0
        self._plain_replies = False
        self._admitted_ip: str | None = None
        self.last_rcpt_arg = ""

    # Session state ---------------------------------------------------------------------

    @property
    def secure(self) -> bool:
        """Under TLS: implicit (RFC 8314) or after STARTTLS (RFC 3207)."""
        return self.implicit_tls or self._tls_protocol is not None

    @property
    def peer_ip(self) -> str:
        peer = self.session.peer if self.session else None
        return str(peer[0]) if isinstance(peer, tuple) and peer else ""

    def may_authenticate(self) -> bool:
        return self.secure or settings.BUZON_ALLOW_PLAINTEXT_AUTH

    async def _handle_client(self) -> None:
        ip = self.peer_ip
        if self.tracker is not None:
            if not self.tracker.admit(ip):
                self._plain_replies = True
                await self.push(replies.R421_TOO_MANY_CONNECTIONS)
                self.transport.close()
                return
            self._admitted_ip = ip
        self._plain_replies = True  # the greeting carries no enhanced code (RFC 2034 §3)
        self._greeting_pending = True
        await super()._handle_client()

    def connection_lost(self, error: Exception | None) -> None:
        if self.tracker is not None and self._admitted_ip is not None:
            self.tracker.leave(self._admitted_ip)
            self._admitted_ip = None
        super().connection_lost(error)

    def _timeout_cb(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(replies.R421_TIMEOUT.encode() + b"\r\n")
        super()._timeout_cb()

    # Replies ----------------------------------------------------------------------------

    async def push(self, status) -> None:
        if getattr(self, "_greeting_pending", False):
            self._greeting_pending = False
            await super().push(status)
            self._plain_replies = False
            return
        if isinstance(status, str) and not self._plain_replies:
            status = _with_enhanced_code(status)
        await super().push(status)
        text = status if isinstance(status, str) else status.decode("ascii", "replace")
        last = text.rsplit("\r\n", 1)[-1]
        if last[:1] in ("4", "5") and not last.startswith("421") and self.max_errors:
            self.errors += 1
            if self.errors >= self.max_errors and self.transport is not None:
                log.info("%s: %d errors, closing", self.peer_ip, self.errors)
                await super().push(replies.R421_TOO_MANY_ERRORS)
                self.transport.close()

    async def smtp_EHLO(self, hostname: str) -> None:
        self._plain_replies = True
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self._plain_replies = False

    async def smtp_HELO(self, hostname: str) -> None:
        self._plain_replies = True
        try:
            await super().smtp_HELO(hostname)
        finally:
            self._plain_replies = False

    async def smtp_RCPT(self, arg: str | None) -> None:
        self.last_rcpt_arg = arg or ""  # the policy looks for source routes in the raw path
        await super().smtp_RCPT(arg)

    async def smtp_AUTH(self, arg: str) -> None:
        if self.session is not None and self.session.extended_smtp:
            if not self.may_authenticate():
                await self.push(replies.R538_ENCRYPTION_REQUIRED)
                return
            if self.envelope is not None and self.envelope.mail_from:
                await self.push(replies.R503_AUTH_IN_TRANSACTION)  # RFC 4954 §4
                return
        await super().smtp_AUTH(arg)

    # DATA --------------------------------------------------------------------------------

    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            # RFC 2920 §3.1: a pipelined DATA after every RCPT failed.
            await self.push(
                replies.R554_NO_VALID_RECIPIENTS
                if self.envelope.mail_from
                else replies.R503_NEED_RCPT
            )
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        content, problem = await self._read_data()
        if self.transport is None or (content is None and problem is None):
            return  # the connection went away
        self._reset_timeout()
        if problem is not None:
            self._set_post_data_state()
            await self.push(problem)
            return
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push(replies.R250_OK if not isinstance(status, str) else status)

    async def _read_data(self) -> tuple[bytes | None, str | None]:
        """Read to <CRLF>.<CRLF>; return (content, None) or (None, the reply refusing it)."""
        limit = self.data_size_limit
        lines: list[bytes] = []
        size = 0
        too_big = too_long = bare = False
        continuing = False  # the previous read was the head of an over-long line
        rearmed = 0.0
        while self.transport is not None:
            now = self.loop.time()
            if now - rearmed > 1.0:  # RFC 5321 §4.5.3.2.5: the timeout runs per data block
                self._reset_timeout(self.data_timeout)
                rearmed = now
            try:
                line = await self._reader.readuntil(b"\r\n")
            except asyncio.LimitOverrunError as e:
                too_long, continuing = True, True
                lines.clear()
                await self._reader.readexactly(e.consumed)
                continue
            except asyncio.IncompleteReadError:
                return None, None
            except asyncio.CancelledError:
                self._writer.close()
                raise
            if continuing:  # the tail of an over-long line, never the end of DATA
                continuing = False
                continue
            if line == b".\r\n":  # at a line start, so preceded by <CRLF>
                break
            size += len(line)
            if b"\r" in line[:-2] or b"\n" in line[:-2]:
                bare = True
            if limit and size > limit:
                too_big = True
            if too_big or too_long or bare:
                lines.clear()
                continue
            lines.append(line[1:] if line[:1] == b"." else line)  # RFC 5321 §4.5.2
        else:
            return None, None
        if bare:
            log.info("%s: bare CR/LF in DATA, refused", self.peer_ip)
            return None, replies.R550_BARE_NEWLINE
        if too_long:
            return None, replies.R500_LINE_TOO_LONG
        if too_big:
            return None, replies.R552_TOO_BIG
        return b"".join(lines), None


def _with_enhanced_code(status: str) -> str:
    out = []
    for line in status.split("\r\n"):
        code = line[:3]
        if (
            code in ENHANCED_DEFAULTS
            and line[3:4] in (" ", "-", "")
            and not _HAS_ENHANCED.match(line)
        ):
            rest = line[4:]
            line = f"{code}{line[3:4] or ' '}{ENHANCED_DEFAULTS[code]} {rest}".rstrip()
        out.append(line)
    return "\r\n".join(out)
