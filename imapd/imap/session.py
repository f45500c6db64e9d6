"""One IMAP connection: state, the command loop, dispatch and the store-error table.

The loop reads a command (lines and literals, bounded by parser.CommandBuffer), checks it
is allowed in the current state (ALLOWED), runs its handler, reports updates from other
sessions (selected.py) and answers. `Bad`/`No` from a handler or the parser become tagged
replies and the session goes on; anything unexpected is logged and answered
`NO [SERVERBUG]` (STYLE §4).
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from django.conf import settings

from mailhost import store
from mailhost.dbpool import run_db, run_db_short, run_db_write
from mailhost.mail import utf7
from mailhost.store import errors as store_errors
from mailhost.store import names
from mailhost.store.values import AccountRef, Appended, Changes, MessageFlags

from . import commands as c
from . import responses
from .errors import Answered, Bad, Bye, ImapError, No
from .parser import CommandBuffer, CommandTooLarge, ParseError, literal_request, parse_command
from .selected import Selected

log = logging.getLogger(__name__)
T = TypeVar("T")
_ids = itertools.count(1)


class State(enum.Enum):
    NOT_AUTHENTICATED = 1
    AUTHENTICATED = 2
    SELECTED = 3
    LOGOUT = 4


ANY_STATE = {c.Capability, c.Noop, c.Logout, c.Id}
MAILBOX_COMMANDS = {
    c.Select,
    c.Create,
    c.Delete,
    c.Rename,
    c.Subscribe,
    c.List,
    c.Namespace,
    c.Status,
    c.Append,
    c.Idle,
    c.GetQuota,
    c.GetQuotaRoot,
    c.SetQuota,
    c.Compress,
    c.Enable,
}
MESSAGE_COMMANDS = {
    c.Check,
    c.Close,
    c.Unselect,
    c.Expunge,
    c.Search,
    c.Fetch,
    c.Store,
    c.Copy,
    c.Move,
    c.Sort,
    c.Thread,
}
ALLOWED = {
    State.NOT_AUTHENTICATED: ANY_STATE | {c.StartTLS, c.Login, c.Authenticate},
    State.AUTHENTICATED: ANY_STATE | MAILBOX_COMMANDS,
    State.SELECTED: ANY_STATE | MAILBOX_COMMANDS | MESSAGE_COMMANDS,
}

# RFC 9051 §7.5.1: no EXPUNGE while answering these (they may use sequence numbers).
NO_EXPUNGE_DURING = (c.Fetch, c.Store, c.Search, c.Copy, c.Move, c.Sort, c.Thread)

# Store errors -> (response code, code when the command creates the target implicitly).
STORE_ERRORS: dict[type[Exception], str] = {
    store_errors.MailboxNotFound: "NONEXISTENT",
    store_errors.MailboxExists: "ALREADYEXISTS",
    store_errors.InvalidMailboxName: "CANNOT",
    store_errors.HasChildren: "HASCHILDREN",
    store_errors.CannotDelete: "CANNOT",
    store_errors.MessageTooLarge: "TOOBIG",
    store_errors.OverQuota: "OVERQUOTA",
    store_errors.AccountNotFound: "UNAVAILABLE",
}
TRYCREATE_COMMANDS = (c.Append, c.Copy, c.Move)

BASE_CAPS = ["IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE"]
AUTHED_CAPS = [
    "IMAP4rev1",
    "IMAP4rev2",
    "LITERAL+",
    "ID",
    "ENABLE",
    "IDLE",
    "NAMESPACE",
    "UIDPLUS",
    "MOVE",
    "UNSELECT",
    "CHILDREN",
    "LIST-EXTENDED",
    "LIST-STATUS",
    "SPECIAL-USE",
    "CREATE-SPECIAL-USE",
    "ESEARCH",
    "SEARCHRES",
    "CONDSTORE",
    "QRESYNC",
    "SORT",
    "THREAD=REFERENCES",
    "THREAD=ORDEREDSUBJECT",
    "QUOTA",
    "QUOTA=RES-STORAGE",
    "STATUS=SIZE",
    "BINARY",
    "UTF8=ACCEPT",
]

# Reads of at most this many rows are short (mailhost.dbpool.run_db_short): with SQLite or a
# local PostgreSQL they run on the event-loop thread; bigger ones (a 100,000-message
# SELECT) go to the pool.
SHORT_READ_ROWS = 5000
OUTPUT_FLUSH = 256 * 1024

Handler = Callable[["Session", c.Command], Awaitable[object]]
HANDLERS: dict[type[c.Command], Handler] = {}


def handles(*types: type[c.Command]):
    """Register a handler coroutine for these command types."""

    def register(fn: Handler) -> Handler:
        for t in types:
            HANDLERS[t] = fn
        return fn

    return register


class RateLimiter:
    """A token bucket: `rate` commands per second with a burst of twice that."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.tokens = float(rate * 2)
        self.stamp = time.monotonic()

    async def wait(self) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        self.tokens = min(self.rate * 2, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            await asyncio.sleep((1 - self.tokens) / self.rate)
            self.tokens = 1
            self.stamp = time.monotonic()
        self.tokens -= 1


class Session:
    def __init__(self, conn) -> None:
        self.conn = conn
        self.id = next(_ids)
        self.state = State.NOT_AUTHENTICATED
        self.account: AccountRef | None = None
        self.selected: Selected | None = None
        self.enabled: set[str] = set()
        self.condstore = False  # CONDSTORE active (RFC 7162 §3.1)
        self.sub = None  # events.Subscription once authenticated
        self.auth_failures = 0
        self.limiter = RateLimiter(settings.BUZON_IMAP_COMMANDS_PER_SECOND)
        self.current: c.Command | None = None
        self.last_forced_sync = 0.0  # NOOP/CHECK ask the store at most every few seconds
        self.events: list = []  # drained from `sub` but not yet reported
        self.out: list[bytes] = []  # response bytes not yet written (see send)
        self.out_size = 0
        # Autologout (readline, _check_silence): the task waiting for input, if any.
        self.waiting: asyncio.Task | None = None
        self.deadline = 0.0
        self.watchdog: asyncio.TimerHandle | None = None
        self.timed_out = False

    # -- properties ------------------------------------------------------------------------
    @property
    def rev2(self) -> bool:
        return "IMAP4REV2" in self.enabled

    @property
    def utf8(self) -> bool:
        return "UTF8=ACCEPT" in self.enabled or self.rev2

    @property
    def qresync(self) -> bool:
        return "QRESYNC" in self.enabled

    @property
    def account_id(self) -> int:
        assert self.account is not None
        return self.account.id

    def login_allowed(self) -> bool:
        """Passwords only under TLS, or on loopback when the development setting allows."""
        return self.conn.tls or (settings.BUZON_ALLOW_PLAINTEXT_AUTH and self.conn.is_loopback)

    def capabilities(self) -> list[str]:
        if self.state != State.NOT_AUTHENTICATED:
            caps = list(AUTHED_CAPS)
            caps.append(f"APPENDLIMIT={settings.BUZON_MAX_MESSAGE_SIZE}")
            if not self.conn.compressed:
                caps.append("COMPRESS=DEFLATE")
            return caps
        caps = list(BASE_CAPS)
        if not self.conn.tls:
            caps.append("STARTTLS")
        if self.login_allowed():
            caps.append("AUTH=PLAIN")
        else:
            caps.append("LOGINDISABLED")
        return caps

    # -- output ----------------------------------------------------------------------------
    # A command's response lines are collected and written together when the session drains
    # (before it waits for input, and after each command): one send() per command instead
    # of one per line. Past OUTPUT_FLUSH bytes they go out at once, so memory stays bounded.
    def send(self, data: bytes) -> None:
        self.out.append(data)
        self.out_size += len(data)
        if self.out_size >= OUTPUT_FLUSH:
            self.flush()

    def untagged(self, *parts: bytes) -> None:
        self.send(responses.untagged(*parts))

    def flush(self) -> None:
        """Hand the collected output to the connection (without waiting for it to drain)."""
        if self.out:
            data = self.out[0] if len(self.out) == 1 else b"".join(self.out)
            self.out.clear()
            self.out_size = 0
            self.conn.write(data)

    async def drain(self) -> None:
        self.flush()
        await self.conn.drain()

    # -- names -----------------------------------------------------------------------------
    def mailbox_name(self, raw: bytes) -> str:
        """Decode a client mailbox name: UTF-8 always accepted; modified UTF-7 in rev1."""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise Bad("Mailbox name is not valid UTF-8") from e
        if not self.utf8 and "&" in text:
            try:
                text = utf7.decode(text)
            except utf7.InvalidUtf7 as e:
                raise No("Mailbox name is not valid modified UTF-7", "CANNOT") from e
        if text.endswith("/") and len(text) > 1:
            text = text.rstrip("/")
        return names.normalize(text)

    def wire_name(self, name: str) -> bytes:
        return responses.mailbox(name, self.utf8)

    # -- the loop --------------------------------------------------------------------------
    async def run(self) -> None:
        host = settings.BUZON_HOSTNAME
        caps = " ".join(self.capabilities())
        self.send(responses.status(None, b"OK", f"{host} Buzon IMAP ready", f"CAPABILITY {caps}"))
        await self.drain()
        try:
            while self.state != State.LOGOUT and not self.conn.closed:
                data = await self.read_command()
                if data is None:
                    break
                if data == b"":  # refused while being read: the answer is collected
                    await self.drain()
                    continue
                await self.limiter.wait()
                await self.handle(data)
                await self.drain()
        except Bye as e:
            self.send(responses.status(None, b"BYE", e.text, e.code))
            await self.drain()
        finally:
            if self.watchdog is not None:
                self.watchdog.cancel()
            if self.sub is not None:
                self.sub.close()

    def _timeout(self) -> int:
        if self.state == State.NOT_AUTHENTICATED:
            return settings.BUZON_IMAP_LOGIN_TIMEOUT
        return settings.BUZON_IMAP_TIMEOUT

    async def readline(self) -> bytes | None:
        """The next line from the client; Bye (autologout) after the state's timeout of
        silence (RFC 9051 §5.4)."""
        from imapd.net import LineTooLong

        loop = asyncio.get_running_loop()
        self.deadline = loop.time() + self._timeout()
        if self.watchdog is None:
            self.watchdog = loop.call_at(self.deadline, self._check_silence)
        self.waiting = asyncio.current_task()
        try:
            return await self.conn.readline(settings.BUZON_IMAP_MAX_LINE)
        except asyncio.CancelledError:
            if self.timed_out and self.waiting is not None:
                self.waiting.uncancel()
                raise Bye("Autologout: idle for too long") from None
            raise
        except LineTooLong as e:
            raise _LineTooLong() from e
        finally:
            self.waiting = None

    def _check_silence(self) -> None:
        """The autologout timer: one per session, moved on only when it fires (a timeout
        armed and cancelled around every read cost more than the read's own bookkeeping).
        It ends the read if the session has waited for input past its deadline."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self.waiting is not None and now >= self.deadline:
            self.timed_out = True
            self.watchdog = None
            self.waiting.cancel()
            return
        later = self.deadline if self.deadline > now else now + self._timeout()
        self.watchdog = loop.call_at(later, self._check_silence)

    async def read_command(self) -> bytes | None:
        """Return one command's bytes, b"" after answering a command that was refused while
        being read, or None at end of input."""
        try:
            line = await self.readline()
            if line is None:
                return None
            max_literal = settings.BUZON_MAX_MESSAGE_SIZE
            buf = CommandBuffer(
                max_line=settings.BUZON_IMAP_MAX_LINE,
                max_literal=max_literal,
                max_command=max_literal + 16 * settings.BUZON_IMAP_MAX_LINE,
            )
            while True:
                try:
                    request = buf.add_line(line)
                except CommandTooLarge as e:
                    request = literal_request(line)
                    if request is not None and not request.synchronizing:
                        # RFC 7888 §4: the client sends the bytes anyway; we cannot resync.
                        raise Bye("Literal is too large") from e
                    first = buf.parts[0]
                    is_append = b" APPEND " in first[:200].upper()
                    if is_append and request is not None:
                        self.send(responses.status(e.tag, b"NO", e.text, "TOOBIG"))
                    else:
                        self.send(responses.status(e.tag, b"BAD", e.text))
                    return b""
                if request is None:
                    return buf.take()
                if request.synchronizing:
                    self.send(b"+ Ready for literal data\r\n")
                    await self.drain()
                data = await self.conn.readexactly(request.size)
                if data is None:
                    return None
                buf.add_literal(data)
                line = await self.readline()
                if line is None:
                    return None
        except _LineTooLong:
            self.send(responses.status(None, b"BAD", "Line is too long"))
            return b""

    async def handle(self, data: bytes) -> None:
        try:
            cmd = parse_command(data)
        except ParseError as e:
            self.send(responses.status(e.tag, b"BAD", e.text))
            return
        self.current = cmd
        try:
            result = await self.execute(cmd)
            await self.report_updates(expunge_ok=not isinstance(cmd, NO_EXPUNGE_DURING) or cmd.uid)
            if self.state == State.LOGOUT:
                self.send(responses.status(cmd.tag, b"OK", "LOGOUT completed"))
                return
            code, text = result if isinstance(result, tuple) else (None, result)
            self.send(responses.status(cmd.tag, b"OK", text or f"{cmd.name} completed", code))
        except Answered:
            return
        except Bye:
            raise
        except ImapError as e:
            if isinstance(e, No):
                await self.safe_updates(cmd)
            self.send(responses.status(cmd.tag, e.status, e.text, e.code))
        except store_errors.StoreError as e:
            await self.safe_updates(cmd)
            code = STORE_ERRORS.get(type(e), "CANNOT")
            if isinstance(e, store_errors.MailboxNotFound) and isinstance(cmd, TRYCREATE_COMMANDS):
                code = "TRYCREATE"
            self.send(responses.status(cmd.tag, b"NO", str(e), code))
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("imap session %s: command %s failed", self.id, cmd.name)
            self.send(responses.status(cmd.tag, b"NO", "Internal server error", "SERVERBUG"))
        finally:
            self.current = None

    async def safe_updates(self, cmd: c.Command) -> None:
        try:
            await self.report_updates(expunge_ok=False)
        except Exception:
            log.exception("imap session %s: updates after %s failed", self.id, cmd.name)

    async def execute(self, cmd: c.Command) -> object:
        if type(cmd) not in ALLOWED[self.state]:
            if self.state == State.NOT_AUTHENTICATED:
                raise Bad(f"{cmd.name} needs authentication first")
            if type(cmd) in MESSAGE_COMMANDS:
                raise Bad(f"{cmd.name} needs a selected mailbox")
            raise Bad(f"{cmd.name} is not allowed in this state")
        return await HANDLERS[type(cmd)](self, cmd)

    # -- updates from other sessions -------------------------------------------------------
    async def report_updates(self, *, expunge_ok: bool = True, force: bool = False) -> None:
        """Send EXPUNGE/EXISTS/FETCH for changes other sessions made (RFC 9051 §7.4.1)."""
        sel = self.selected
        if self.sub is None:
            return
        events = self.take_events()
        if sel is None:
            return
        if force or any(e.mailbox_id == sel.mailbox_id and not sel.knows(e) for e in events):
            try:
                changes = await _changes_since(self.account_id, sel.mailbox_id, sel.highestmodseq)
            except store_errors.MailboxNotFound:
                return
            new = sel.absorb(changes)
            if new and not self.rev2 and not sel.readonly:
                await self.claim_recent(sel, new)
        self.flush_updates(expunge_ok=expunge_ok)

    async def claim_recent(self, sel: Selected, new: list[int]) -> None:
        r"""RFC 3501 §2.3.2: \Recent in one session only. Sessions of this process that
        learn of the same messages together leave the claim to the first; messages this
        session APPENDed were claimed by the APPEND itself (`note_appended`)."""
        if sel.claimed:
            own = sel.claimed.intersection(new)
            sel.recent.update(own)
            sel.claimed.difference_update(own)
            new = [u for u in new if u not in own]
        key = (sel.mailbox_id, sel.info.uidvalidity)
        if new and new[-1] >= _claimed.get(key, 0):
            _claimed[key] = new[-1] + 1
            first = await run_db_write(store.claim_recent, self.account_id, sel.mailbox_id)
            sel.recent.update(u for u in new if u >= first)

    def note_appended(self, appended: Appended) -> None:
        """This session APPENDed `appended` to its selected mailbox. With no change by
        anyone else in between (its MODSEQ is the next after the view's), the view takes it
        in as it is, and the next update needs no changes_since; else the message comes
        with the other changes, between commands."""
        sel = self.selected
        if sel is None or appended.mailbox_id != sel.mailbox_id:
            return
        if appended.recent:
            key = (sel.mailbox_id, sel.info.uidvalidity)
            _claimed[key] = max(_claimed.get(key, 0), appended.uid + 1)
            sel.claimed.add(appended.uid)
        claim_needed = not self.rev2 and not sel.readonly and not appended.recent
        if claim_needed or appended.modseq != sel.highestmodseq + 1:
            return
        if sel.known_modseqs or (sel.uids and appended.uid <= sel.uids[-1]):
            return
        flags = MessageFlags(appended.uid, appended.modseq, appended.flags)
        new = sel.absorb(Changes(appended.modseq, appended.uid + 1, [flags], []))
        if appended.recent:
            sel.recent.update(new)
            sel.claimed.difference_update(new)

    def take_events(self) -> list:
        events = self.events
        self.events = []
        if self.sub is not None:
            events.extend(self.sub.drain())
        return events

    def in_sync(self) -> bool:
        """True when no event says the selected mailbox changed beyond what the view knows,
        so its cached flags are current (see selected.py)."""
        sel = self.selected
        if self.sub is None or sel is None:
            return False
        self.events.extend(self.sub.drain())
        return not any(e.mailbox_id == sel.mailbox_id and not sel.knows(e) for e in self.events)

    def flush_updates(self, *, expunge_ok: bool) -> None:
        sel = self.selected
        if sel is None:
            return
        if expunge_ok and sel.pending_expunged:
            for line in sel.remove(list(sel.pending_expunged), vanished=self.qresync):
                self.send(line)
        for line in sel.exists_lines(rev1=not self.rev2):
            self.send(line)
        if sel.pending_flags:
            for uid in sorted(sel.pending_flags):
                mf = sel.pending_flags[uid]
                seq = sel.seq_of(uid)
                if seq is None:
                    continue
                items = [b"UID %d" % uid, b"FLAGS " + self.flags_bytes(uid, mf.flags)]
                if self.condstore:
                    items.append(b"MODSEQ (%d)" % mf.modseq)
                self.send(responses.untagged(b"%d FETCH (%s)" % (seq, b" ".join(items))))
            sel.pending_flags.clear()

    def flags_bytes(self, uid: int, flags: tuple[str, ...]) -> bytes:
        sel = self.selected
        if sel is not None and not self.rev2 and uid in sel.recent:
            flags = (*flags, "\\Recent")
        return responses.flag_list(flags)

    async def read(self, fn: Callable[..., T], /, *args: Any, rows: int, **kwargs: Any) -> T:
        """Run the store read `fn` that touches about `rows` rows: short ones inline when
        the database allows (mailhost.dbpool.run_db_short), long ones on the DB pool."""
        if rows <= SHORT_READ_ROWS:
            return await run_db_short(fn, *args, **kwargs)
        return await run_db(fn, *args, **kwargs)

    def need_selected(self) -> Selected:
        if self.selected is None:
            raise Bad("No mailbox selected")
        return self.selected


class _LineTooLong(Exception):
    pass


_inflight: dict[tuple[int, int, int], asyncio.Future] = {}
_claimed: dict[tuple[int, int], int] = {}  # (mailbox, uidvalidity) -> \Recent claimed below


async def _changes_since(account_id: int, mailbox_id: int, modseq: int):
    """store.changes_since, shared by sessions asking the same question at the same time
    (one delivery wakes every IDLE session on that mailbox: one query, not one each)."""
    key = (account_id, mailbox_id, modseq)
    pending = _inflight.get(key)
    if pending is not None:
        return await asyncio.shield(pending)
    future = asyncio.get_running_loop().create_future()
    _inflight[key] = future
    try:
        # Short: what changed since the view's MODSEQ, a handful of rows between commands.
        result = await run_db_short(store.changes_since, account_id, mailbox_id, modseq)
        future.set_result(result)
        return result
    except BaseException as e:
        future.set_exception(e)
        future.exception()  # retrieved: no "never retrieved" warning when nobody waits
        raise
    finally:
        del _inflight[key]
