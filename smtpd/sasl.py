"""AUTH PLAIN (RFC 4616) and LOGIN for aiosmtpd, checked by mailhost.auth through run_db.

aiosmtpd's `authenticator=` runs synchronously on the event loop, and a password check is
slow on purpose (argon2), so these are async `auth_*` hooks on the handler instead. A failed
check waits BUZON_AUTH_FAILURE_DELAY before answering; mailhost.auth counts failures per IP
and per account and locks both out past BUZON_AUTH_MAX_FAILURES.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging

from aiosmtpd.smtp import MISSING, AuthResult
from django.conf import settings

from mailhost.auth import check_credentials
from mailhost.dbpool import run_db
from mailhost.directory import owned_addresses

from . import replies

log = logging.getLogger(__name__)


async def _initial_or_challenge(server, args: list[str], challenge: str) -> bytes | None:
    """The client's response: the initial response (RFC 4954 §4) or an answer to 334."""
    if len(args) > 1:
        if args[1] == "=":
            return b""
        try:
            return base64.b64decode(args[1], validate=True)
        except (binascii.Error, ValueError):
            await server.push(replies.R501_SASL)
            return None
    data = await server.challenge_auth(challenge)
    return None if data is MISSING else data


async def _verify(server, session, user: str, password: str) -> AuthResult:
    ip = server.peer_ip
    account = await run_db(check_credentials, user, password, remote_ip=ip)
    if account is None:
        log.info("SMTP AUTH failed for %r from %s", user, ip)
        if settings.BUZON_AUTH_FAILURE_DELAY:
            await asyncio.sleep(settings.BUZON_AUTH_FAILURE_DELAY)
        return AuthResult(success=False, handled=False)
    session.account = account
    session.owned = await run_db(owned_addresses, account.id)
    return AuthResult(success=True, auth_data=account)


class SaslHooks:
    """Mixed into the SMTP handler: aiosmtpd finds `auth_<MECHANISM>` methods on it."""

    async def auth_PLAIN(self, server, args: list[str]) -> AuthResult:  # noqa: N802
        data = await _initial_or_challenge(server, args, "")
        if data is None:
            return AuthResult(success=False, handled=True)
        parts = data.split(b"\0")
        if len(parts) != 3:
            await server.push(replies.R501_SASL)
            return AuthResult(success=False, handled=True)
        try:
            authzid, user, password = (p.decode("utf-8") for p in parts)
        except UnicodeDecodeError:
            await server.push(replies.R501_SASL)
            return AuthResult(success=False, handled=True)
        if authzid and authzid.lower() != user.lower():  # no proxy authorisation
            return AuthResult(success=False, handled=False)
        return await _verify(server, server.session, user, password)

    async def auth_LOGIN(self, server, args: list[str]) -> AuthResult:  # noqa: N802
        user = await _initial_or_challenge(server, args, "Username:")
        if user is None:
            return AuthResult(success=False, handled=True)
        password = await server.challenge_auth("Password:")
        if password is MISSING:
            return AuthResult(success=False, handled=True)
        try:
            return await _verify(
                server, server.session, user.decode("utf-8"), password.decode("utf-8")
            )
        except UnicodeDecodeError:
            await server.push(replies.R501_SASL)
            return AuthResult(success=False, handled=True)
