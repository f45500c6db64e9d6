"""One POP3 session: AUTHORIZATION -> TRANSACTION -> UPDATE (RFC 1939 §3), and the handlers.

The "allowed in this state?" check happens once, before dispatch. Handlers call the store
through run_db and write replies; errors are exceptions that know their -ERR reply.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from typing import BinaryIO

from django.conf import settings
from django.core.cache import cache

from imapd.net import Connection, LineTooLong
from mailhost import auth, sasl, store, tls
from mailhost.dbpool import run_db
from mailhost.mail import address as addr
from mailhost.store import blobs
from mailhost.store.values import AccountRef

from . import maildrop, wire
from .errors import AUTH, IN_USE, LOGIN_DELAY, SYS_TEMP, Err, from_exception
from .lock import MaildropLock
from .parser import (
    MAX_LINE,
    MAX_SASL_LINE,
    Apop,
    Auth,
    Capa,
    Command,
    Dele,
    List,
    Noop,
    ParseError,
    Pass,
    Quit,
    Retr,
    Rset,
    Stat,
    Stls,
    Top,
    Uidl,
    User,
    parse_command,
    strip_eol,
)

log = logging.getLogger(__name__)

# Failed logins one connection may make before it is closed; mailhost.auth also counts
# failures per address and per IP across connections and locks them out.
MAX_FAILURES_PER_SESSION = 3
MECHANISMS = ("PLAIN",)

# Exceptions nobody expected: logged, answered with -ERR, and kept here so a test fails
# even when the client never noticed.
unhandled_errors: deque[BaseException] = deque(maxlen=100)


class State(enum.Enum):
    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"


ALLOWED: dict[State, set[type[Command]]] = {
    State.AUTHORIZATION: {Capa, Quit, User, Pass, Apop, Auth, Stls},
    State.TRANSACTION: {Capa, Quit, Stat, List, Retr, Dele, Noop, Rset, Top, Uidl},
    State.UPDATE: set(),
}


class Session:
    """One connection's POP3 state and its command handlers."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.state = State.AUTHORIZATION
        self.pending_user: str | None = None  # set by USER, good for the next line only
        self.user_for_pass: str | None = None
        self.failures = 0
        self.account: AccountRef | None = None
        self.drop: maildrop.Maildrop | None = None
        self.lock: MaildropLock | None = None
        self.closing = False

    # I/O ---------------------------------------------------------------------------

    def send(self, line: str) -> None:
        self.conn.write(line.encode("utf-8") + b"\r\n")

    def send_multiline(self, first: str, lines: list[str]) -> None:
        """A multi-line response (RFC 1939 §3); `lines` never start with '.' here."""
        body = "".join(f"{line}\r\n" for line in lines)
        self.conn.write(f"{first}\r\n{body}.\r\n".encode())

    async def run(self) -> None:
        self.send(f"+OK {settings.BUZON_HOSTNAME} POP3 server ready")
        await self.conn.drain()
        try:
            while self.state is not State.UPDATE and not self.closing and not self.conn.closed:
                try:
                    line = await self._readline(MAX_LINE)
                except LineTooLong:
                    # RFC 2449 §4: commands are at most 255 octets; answer and go on.
                    self.pending_user = None
                    self.conn.write(Err("Line too long").reply())
                    await self.conn.drain()
                    continue
                except TimeoutError:
                    # RFC 1939 §3 autologout: close without entering UPDATE (no deletions).
                    self.send("-ERR Autologout; idle for too long")
                    break
                if line is None:
                    break
                await self.execute_line(line)
                # PIPELINING: replies go out as they are written; drain only waits when the
                # client does not read, so a flood of pipelined commands stays bounded.
                await self.conn.drain()
        finally:
            await self.end()

    async def _readline(self, limit: int) -> bytes | None:
        return await asyncio.wait_for(
            self.conn.readline(limit), timeout=settings.BUZON_POP3_IDLE_TIMEOUT
        )

    async def end(self) -> None:
        """The connection is over: release the lock. Nothing is deleted here."""
        if self.lock is not None:
            await self.lock.release()

    # Dispatch -----------------------------------------------------------------------

    async def execute_line(self, line: bytes) -> None:
        self.user_for_pass, self.pending_user = self.pending_user, None
        cmd: Command | None = None
        try:
            cmd = parse_command(line)
            if type(cmd) not in ALLOWED[self.state]:
                where = "before login" if self.state is State.AUTHORIZATION else "after login"
                raise Err(f"{cmd.name} is not allowed {where}")
            await HANDLERS[type(cmd)](self, cmd)
        except ParseError as e:
            self.conn.write(Err(str(e)).reply())
        except Err as e:
            self.conn.write(e.reply())
            self.closing = self.closing or e.close
        except (ConnectionError, ssl.SSLError):
            raise
        except Exception as e:
            err = from_exception(e)
            if err is None:
                name = cmd.name if cmd is not None else "?"
                log.exception("POP3 %s from %s failed", name, self.conn.peer_ip)
                unhandled_errors.append(e)
                err = Err("Internal server error; the session goes on", SYS_TEMP)
            else:
                log.warning("POP3 store error for %s: %r", self.conn.peer_ip, e)
            self.conn.write(err.reply())

    # AUTHORIZATION ------------------------------------------------------------------

    def passwords_allowed(self) -> bool:
        """RFC 2595 §2 / ARCHITECTURE: passwords only over TLS (or loopback in development)."""
        return self.conn.tls or (settings.BUZON_ALLOW_PLAINTEXT_AUTH and self.conn.is_loopback)

    def _require_tls(self) -> None:
        if not self.passwords_allowed():
            raise Err("Passwords are only accepted over TLS; use STLS first", AUTH)

    async def capa(self, cmd: Capa) -> None:
        """RFC 2449 §5; USER and SASL are only announced when they may be used."""
        caps = ["TOP", "UIDL"]
        if self.state is State.AUTHORIZATION and self.passwords_allowed():
            caps += ["USER", "SASL " + " ".join(MECHANISMS)]
        caps += ["RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
        caps.append(f"EXPIRE {settings.BUZON_POP3_EXPIRE}")
        if settings.BUZON_POP3_LOGIN_DELAY > 0:
            caps.append(f"LOGIN-DELAY {settings.BUZON_POP3_LOGIN_DELAY}")
        if self.state is State.AUTHORIZATION and not self.conn.tls:
            caps.append("STLS")
        caps.append("IMPLEMENTATION Buzon")
        self.send_multiline("+OK Capability list follows", caps)

    async def stls(self, cmd: Stls) -> None:
        """RFC 2595 §4: only in AUTHORIZATION, and only once."""
        if self.conn.tls:
            raise Err("Already using TLS")
        context = tls.server_context()
        self.send("+OK Begin TLS negotiation")
        await self.conn.drain()
        await self.conn.start_tls(context)  # drops anything pipelined in plaintext
        self.pending_user = None

    async def user(self, cmd: User) -> None:
        self._require_tls()
        self.pending_user = cmd.user
        self.send("+OK Send your password")  # the same for every name: no enumeration

    async def pass_(self, cmd: Pass) -> None:
        """RFC 1939 §7: PASS only right after a successful USER."""
        self._require_tls()
        if self.user_for_pass is None:
            raise Err("Send USER first")
        await self.login(self.user_for_pass, cmd.password)

    async def apop(self, cmd: Apop) -> None:
        # APOP needs the plaintext password on the server (MD5 of greeting + secret);
        # accounts keep only a one-way hash, so it cannot be offered (README, "POP3").
        raise Err("APOP is not supported; use USER/PASS or AUTH PLAIN over TLS")

    async def auth(self, cmd: Auth) -> None:
        """RFC 5034 §4 (and the bare "AUTH" that lists mechanisms, as RFC 1734 clients use)."""
        if cmd.mechanism is None:
            mechanisms = list(MECHANISMS) if self.passwords_allowed() else []
            self.send_multiline("+OK SASL mechanisms follow", mechanisms)
            return
        if cmd.mechanism not in MECHANISMS:
            raise Err(f"Unsupported SASL mechanism {cmd.mechanism[:20]}")
        self._require_tls()
        if cmd.initial is not None:
            response = cmd.initial.encode()
        else:
            self.send("+ ")  # an empty challenge (RFC 5034 §4)
            await self.conn.drain()
            try:
                line = await self._readline(MAX_SASL_LINE)
            except LineTooLong:
                raise Err("SASL response too long") from None
            if line is None:
                self.closing = True
                return
            response = strip_eol(line)
        if response == b"*":
            raise Err("Authentication cancelled")
        if response == b"=":
            response = b""
        try:
            authzid, authcid, password = sasl.decode_plain(response)
        except sasl.SaslError as e:
            raise Err(str(e)) from None
        if authzid and addr.normalize(authzid) != addr.normalize(authcid):
            await self._failed()  # acting for another user is not offered
        await self.login(authcid, password)

    async def _failed(self) -> None:
        self.failures += 1
        await asyncio.sleep(settings.BUZON_AUTH_FAILURE_DELAY)
        close = self.failures >= MAX_FAILURES_PER_SESSION
        raise Err("Authentication failed", AUTH, close=close)

    async def login(self, address: str, password: str) -> None:
        account = await run_db(
            auth.check_credentials, address, password, remote_ip=self.conn.peer_ip
        )
        if account is None:
            await self._failed()
        assert account is not None
        await self.open_maildrop(account)
        self.send(f"+OK Logged in; {len(self.drop.items)} messages")  # ASCII, whatever the name

    async def open_maildrop(self, account: AccountRef) -> None:
        """Check LOGIN-DELAY, take the lock (RFC 1939 §8), snapshot INBOX: TRANSACTION."""
        delay = settings.BUZON_POP3_LOGIN_DELAY
        if delay > 0 and not await run_db(_login_delay_passed, account.id, delay):
            # RFC 2449 §8.1.2
            raise Err(f"Wait {delay} seconds between logins", LOGIN_DELAY)
        lock = MaildropLock(account.id)
        if not await lock.acquire():
            raise Err("The maildrop is in use by another POP3 session", IN_USE)
        try:
            drop = await run_db(maildrop.load, account.id)
        except BaseException:
            await lock.release()
            raise
        self.account, self.lock, self.drop = account, lock, drop
        self.state = State.TRANSACTION
        log.info("POP3 login %s from %s", account.address, self.conn.peer_ip)

    async def quit(self, cmd: Quit) -> None:
        if self.state is State.AUTHORIZATION:
            self.send("+OK Bye")
            self.closing = True
            return
        await self.update()

    async def update(self) -> None:
        """RFC 1939 §6: the UPDATE state removes the marked messages, in one store call."""
        self.state = State.UPDATE
        drop, lock = self.drop, self.lock
        assert drop is not None and lock is not None
        uids = drop.deleted_uids()
        if uids and not await lock.confirm():
            await lock.release()
            raise Err("The maildrop lock was lost; nothing was deleted", IN_USE)
        removed = 0
        if uids:
            try:
                removed = len(
                    await run_db(
                        store.expunge, drop.account_id, drop.mailbox_id, uids, only_deleted=False
                    )
                )
            except Exception as e:
                log.exception("POP3 QUIT could not delete messages for %s", drop.account_id)
                await lock.release()
                err = from_exception(e) or Err("Internal server error", SYS_TEMP)
                raise Err(f"Deleted messages were not removed: {err.text}", SYS_TEMP) from e
        await lock.release()  # before the +OK, so the client may log in again at once
        self.send(f"+OK Bye; {removed} messages deleted")

    # TRANSACTION --------------------------------------------------------------------

    def _drop(self) -> maildrop.Maildrop:
        assert self.drop is not None
        return self.drop

    async def sizes(self, numbers: list[int]) -> list[int]:
        drop = self._drop()
        missing = drop.missing_sizes(numbers)
        if missing:
            loop = asyncio.get_running_loop()
            drop.wire_sizes.update(
                await loop.run_in_executor(None, maildrop.compute_sizes, drop, missing)
            )
        return [drop.wire_sizes[n] for n in numbers]

    async def stat(self, cmd: Stat) -> None:
        numbers = self._drop().numbers()
        sizes = await self.sizes(numbers)
        self.send(f"+OK {len(numbers)} {sum(sizes)}")

    async def list_(self, cmd: List) -> None:
        drop = self._drop()
        if cmd.msg is not None:
            drop.get(cmd.msg)
            (size,) = await self.sizes([cmd.msg])
            self.send(f"+OK {cmd.msg} {size}")
            return
        numbers = drop.numbers()
        sizes = await self.sizes(numbers)
        lines = [f"{n} {s}" for n, s in zip(numbers, sizes, strict=True)]
        self.send_multiline(f"+OK {len(numbers)} messages ({sum(sizes)} octets)", lines)

    async def uidl(self, cmd: Uidl) -> None:
        drop = self._drop()
        if cmd.msg is not None:
            drop.get(cmd.msg)
            self.send(f"+OK {cmd.msg} {drop.uidl(cmd.msg)}")
            return
        lines = [f"{n} {drop.uidl(n)}" for n in drop.numbers()]
        self.send_multiline("+OK Unique-ID listing follows", lines)

    async def retr(self, cmd: Retr) -> None:
        item = self._drop().get(cmd.msg)
        (size,) = await self.sizes([cmd.msg])
        await self._send_message(item, f"+OK {size} octets")

    async def top(self, cmd: Top) -> None:
        item = self._drop().get(cmd.msg)
        await self._send_message(item, "+OK Top of message follows", top=cmd.lines)

    async def _send_message(self, item: maildrop.Item, ok: str, *, top: int | None = None) -> None:
        """Stream the blob in chunks: memory stays bounded whatever the message size."""
        loop = asyncio.get_running_loop()
        f, chunk = await loop.run_in_executor(None, _open_and_read, item.sha256)
        try:
            self.send(ok)
            encoder = wire.Encoder(top=top)
            read = len(chunk)
            while chunk:
                if out := encoder.feed(chunk):
                    self.conn.write(out)
                    await self.conn.drain()
                    if self.conn.closed:
                        return
                if encoder.done or read >= item.size:
                    break
                chunk = await loop.run_in_executor(None, f.read, wire.CHUNK)
                read += len(chunk)
            self.conn.write(encoder.finish())
        except (ConnectionError, ssl.SSLError):
            raise
        except Exception:
            # Past the +OK a -ERR would be read as message text: log and hang up.
            log.exception("POP3 RETR of %s failed midway", item.sha256)
            self.closing = True
            raise ConnectionAbortedError("message transfer failed") from None
        finally:
            f.close()

    async def dele(self, cmd: Dele) -> None:
        self._drop().get(cmd.msg)
        self._drop().deleted.add(cmd.msg)
        self.send(f"+OK Message {cmd.msg} deleted")

    async def noop(self, cmd: Noop) -> None:
        self.send("+OK")

    async def rset(self, cmd: Rset) -> None:
        drop = self._drop()
        drop.deleted.clear()
        self.send(f"+OK Maildrop has {len(drop.items)} messages")


def _open_and_read(sha256: str) -> tuple[BinaryIO, bytes]:
    """Open a blob and read its first chunk in one trip to a worker thread."""
    f = blobs.open_blob(sha256)
    try:
        return f, f.read(wire.CHUNK)
    except BaseException:
        f.close()
        raise


def _login_delay_passed(account_id: int, delay: int) -> bool:
    """RFC 2449 §6.10 LOGIN-DELAY: at most one login per `delay` seconds, in every process
    that shares the cache (Redis when REDIS_URL is set)."""
    return cache.add(f"pop3:login:{account_id}", 1, delay)


HANDLERS: dict[type[Command], Callable[[Session, Command], Awaitable[None]]] = {
    Capa: Session.capa,
    Stls: Session.stls,
    User: Session.user,
    Pass: Session.pass_,
    Apop: Session.apop,
    Auth: Session.auth,
    Quit: Session.quit,
    Stat: Session.stat,
    List: Session.list_,
    Uidl: Session.uidl,
    Retr: Session.retr,
    Top: Session.top,
    Dele: Session.dele,
    Noop: Session.noop,
    Rset: Session.rset,
}  # type: ignore[dict-item]
