"""Any-state and not-authenticated commands: CAPABILITY, NOOP, LOGOUT, ID, STARTTLS, LOGIN,
AUTHENTICATE, ENABLE, COMPRESS."""

from __future__ import annotations

import asyncio
import time

from django.conf import settings

from mailhost import auth, sasl, tls
from mailhost.dbpool import run_db
from mailhost.mail import imapfmt
from mailhost.store import events

from .. import commands as c
from .. import responses
from ..errors import Answered, Bad, Bye, No
from ..session import Session, State, handles

FORCED_SYNC_SECONDS = 5.0


@handles(c.Capability)
async def capability(s: Session, cmd: c.Capability) -> None:
    s.untagged(b"CAPABILITY " + " ".join(s.capabilities()).encode())


@handles(c.Noop, c.Check)
async def noop(s: Session, cmd: c.Command) -> None:
    """RFC 9051 §6.1.2: NOOP is how a client polls. Events say what changed; the store is
    asked anyway every few seconds, in case an event was lost (they are best-effort)."""
    if s.selected is not None:
        now = time.monotonic()
        force = now - s.last_forced_sync >= FORCED_SYNC_SECONDS
        if force:
            s.last_forced_sync = now
        await s.report_updates(force=force)


@handles(c.Logout)
async def logout(s: Session, cmd: c.Logout) -> None:
    s.untagged(b"BYE Logging out")
    s.state = State.LOGOUT


@handles(c.Id)
async def id_(s: Session, cmd: c.Id) -> None:
    """RFC 2971: tell the client who we are; what it says about itself is only logged."""
    s.untagged(b"ID " + imapfmt.serialize(["name", "Buzon", "vendor", "Buzon", "version", "0.1"]))


@handles(c.StartTLS)
async def starttls(s: Session, cmd: c.StartTLS) -> str:
    if s.conn.tls:
        raise Bad("TLS is already active")
    context = tls.server_context()
    s.send(responses.status(cmd.tag, b"OK", "Begin TLS negotiation now"))
    await s.drain()
    await s.conn.start_tls(context)
    raise Answered()


async def _authenticated(s: Session, address: str, password: str) -> None:
    if not s.login_allowed():
        raise No("Use STARTTLS (or the TLS port) before sending a password", "PRIVACYREQUIRED")
    account = await run_db(auth.check_credentials, address, password, remote_ip=s.conn.peer_ip)
    if account is None:
        s.auth_failures += 1
        await asyncio.sleep(settings.BUZON_AUTH_FAILURE_DELAY)
        if s.auth_failures >= settings.BUZON_IMAP_MAX_AUTH_FAILURES:
            raise Bye("Too many failed logins")
        raise No("Authentication failed", "AUTHENTICATIONFAILED")
    s.account = account
    s.state = State.AUTHENTICATED
    s.sub = events.subscribe(account.id)


def _auth_ok(s: Session) -> tuple[str, str]:
    return ("CAPABILITY " + " ".join(s.capabilities()), "Logged in")


@handles(c.Login)
async def login(s: Session, cmd: c.Login) -> tuple[str, str]:
    try:
        user, password = cmd.user.decode("utf-8"), cmd.password.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Bad("User name and password must be UTF-8") from e
    await _authenticated(s, user, password)
    return _auth_ok(s)


@handles(c.Authenticate)
async def authenticate(s: Session, cmd: c.Authenticate) -> tuple[str, str]:
    """RFC 9051 §6.2.2 with SASL-IR (RFC 4959); PLAIN only (RFC 4616)."""
    if cmd.mechanism != "PLAIN":
        raise No(f"Mechanism {cmd.mechanism[:20]} is not supported", "CANNOT")
    if not s.login_allowed():
        raise No("Use STARTTLS (or the TLS port) before sending a password", "PRIVACYREQUIRED")
    data = cmd.initial
    if data is None:
        s.send(b"+ \r\n")
        await s.drain()
        line = await s.readline()
        if line is None:
            raise Bye("Connection closed during authentication")
        data = line.rstrip(b"\r\n")
        if data == b"*":
            raise Bad("Authentication cancelled")
    try:
        authzid, user, password = sasl.decode_plain(data)
    except sasl.SaslError as e:
        raise Bad(str(e)) from e
    if authzid and authzid.lower() != user.lower():
        raise No("Acting as another user is not allowed", "AUTHORIZATIONFAILED")
    await _authenticated(s, user, password)
    return _auth_ok(s)


ENABLEABLE = {"CONDSTORE", "QRESYNC", "IMAP4REV2", "UTF8=ACCEPT"}


@handles(c.Enable)
async def enable(s: Session, cmd: c.Enable) -> None:
    """RFC 5161: only in the authenticated state; reply with what is newly enabled."""
    if s.state != State.AUTHENTICATED:
        raise Bad("ENABLE is only valid before a mailbox is selected")
    newly = []
    for cap in cmd.capabilities:
        wanted = [cap] + (["CONDSTORE"] if cap == "QRESYNC" else [])
        for name in wanted:
            if name in ENABLEABLE and name not in s.enabled:
                s.enabled.add(name)
                newly.append(name)
    if "CONDSTORE" in s.enabled:
        s.condstore = True
    names = [("IMAP4rev2" if n == "IMAP4REV2" else n) for n in newly]
    s.untagged(b"ENABLED" + b"".join(b" " + n.encode() for n in names))


@handles(c.Compress)
async def compress(s: Session, cmd: c.Compress) -> None:
    """RFC 4978: DEFLATE from the octet after our tagged OK."""
    if cmd.mechanism != "DEFLATE":
        raise Bad(f"Unknown compression mechanism {cmd.mechanism[:20]}")
    if s.conn.compressed:
        raise No("Compression is already active", "COMPRESSIONACTIVE")
    s.send(responses.status(cmd.tag, b"OK", "DEFLATE active"))
    await s.drain()
    s.conn.start_deflate()
    raise Answered()
