"""Mailbox commands: SELECT/EXAMINE, CREATE, DELETE, RENAME, (UN)SUBSCRIBE, LIST/LSUB,
NAMESPACE, STATUS, APPEND, CLOSE, UNSELECT and QUOTA (RFC 9208)."""

from __future__ import annotations

import re
from dataclasses import replace

from django.conf import settings

from mailhost import store
from mailhost.dbpool import run_db, run_db_write
from mailhost.store import imapview, messages
from mailhost.store.names import DELIMITER
from mailhost.store.values import MailboxInfo, MailboxStatus

from .. import commands as c
from .. import responses
from ..errors import Bad, No
from ..selected import Selected
from ..session import SHORT_READ_ROWS, Session, State, handles

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")


def _close_selected(s: Session) -> bool:
    was = s.selected is not None
    s.selected = None
    if s.state == State.SELECTED:
        s.state = State.AUTHENTICATED
    return was


@handles(c.Select)
async def select(s: Session, cmd: c.Select) -> tuple[str, str]:
    """RFC 9051 §6.3.2 (SELECT) / §6.3.3 (EXAMINE), with CONDSTORE and QRESYNC (RFC 7162)."""
    if _close_selected(s) and (s.qresync or s.rev2):
        s.untagged(b"OK [CLOSED] Previous mailbox closed")  # RFC 7162 §3.2.11
    if cmd.qresync is not None and not s.qresync:
        raise Bad("QRESYNC must be enabled first")  # RFC 7162 §3.2.5
    if cmd.condstore or cmd.qresync is not None:
        s.condstore = True
    name = s.mailbox_name(cmd.mailbox)
    rev1 = not s.rev2
    opened = await _open(s, name, want_unseen=rev1)
    if rev1 and not cmd.readonly and opened.first_recent_uid < opened.info.uidnext:
        # RFC 3501 §2.3.2: claim \Recent (a write, only when there is something to claim),
        # then read again so the view holds every UID below the claimed UIDNEXT.
        first = await run_db_write(messages.claim_recent, s.account_id, opened.info.id)
        opened = replace(await _open(s, name, want_unseen=rev1), first_recent_uid=first)
    info = opened.info
    sel = Selected(
        flags=opened.flags or {},
        info=info,
        uids=opened.uids,
        readonly=cmd.readonly,
        highestmodseq=info.highestmodseq,
        uidnext=info.uidnext,
    )
    if rev1:
        first = opened.first_recent_uid
        from bisect import bisect_left

        sel.recent = set(opened.uids[bisect_left(opened.uids, first) :])
    sel.reported_exists, sel.reported_recent = sel.exists, len(sel.recent)
    s.selected = sel
    s.state = State.SELECTED
    s.untagged(b"FLAGS " + responses.flag_list(SYSTEM_FLAGS))
    s.untagged(b"%d EXISTS" % sel.exists)
    if rev1:
        s.untagged(b"%d RECENT" % len(sel.recent))
        if opened.first_unseen_uid is not None:
            seq = sel.seq_of(opened.first_unseen_uid)
            if seq:
                s.untagged(b"OK [UNSEEN %d] First unseen message" % seq)
    permanent = () if cmd.readonly else (*SYSTEM_FLAGS, "\\*")
    s.untagged(b"OK [PERMANENTFLAGS " + responses.flag_list(permanent) + b"] Flags allowed")
    s.untagged(b"OK [UIDVALIDITY %d] UIDs valid" % info.uidvalidity)
    s.untagged(b"OK [UIDNEXT %d] Predicted next UID" % info.uidnext)
    s.untagged(b"OK [HIGHESTMODSEQ %d] Highest" % info.highestmodseq)
    if rev1 is False:
        s.untagged(b'LIST () "/" ' + s.wire_name(info.name))
    if cmd.qresync is not None and cmd.qresync.uidvalidity == info.uidvalidity:
        await _qresync(s, sel, cmd.qresync)
    return ("READ-ONLY" if cmd.readonly else "READ-WRITE", f"{cmd.name} completed")


_big_mailboxes: set[tuple[int, str]] = set()  # seen with more than SHORT_READ_ROWS messages


async def _open(s: Session, name: str, *, want_unseen: bool) -> imapview.OpenedMailbox:
    """imapview.open_mailbox, as a short read unless this mailbox was big last time."""
    key = (s.account_id, name)
    big = key in _big_mailboxes
    opened = await s.read(
        imapview.open_mailbox,
        s.account_id,
        name,
        want_unseen=want_unseen,
        with_flags=not big,  # the view's flags cache, filled at once for small mailboxes
        rows=SHORT_READ_ROWS + 1 if big else 0,
    )
    if len(opened.uids) > SHORT_READ_ROWS:
        _big_mailboxes.add(key)
    else:
        _big_mailboxes.discard(key)
    return opened


async def _qresync(s: Session, sel: Selected, q: c.QResync) -> None:
    """RFC 7162 §3.2.5.2: VANISHED (EARLIER) then FETCH for what changed since `modseq`."""
    changes = await run_db(store.changes_since, s.account_id, sel.mailbox_id, q.modseq)
    vanished = changes.expunged
    if q.known_uids is not None:
        known: set[int] = set()
        for lo, hi in q.known_uids.resolve(sel.uidnext):
            if hi - lo > 1_000_000:
                hi = lo + 1_000_000
            known.update(range(lo, hi + 1))
        vanished = [u for u in vanished if u in known]
    if vanished:
        s.untagged(b"VANISHED (EARLIER) " + responses.seqset(sorted(vanished)))
    for mf in changes.changed:
        seq = sel.seq_of(mf.uid)
        if seq is None:
            continue
        s.untagged(
            b"%d FETCH (UID %d FLAGS %s MODSEQ (%d))"
            % (seq, mf.uid, responses.flag_list(mf.flags), mf.modseq)
        )


@handles(c.Close)
async def close(s: Session, cmd: c.Close) -> None:
    """RFC 9051 §6.4.1: expunge silently (unless read-only) and leave the selected state."""
    sel = s.need_selected()
    if not sel.readonly:
        await run_db_write(store.expunge, s.account_id, sel.mailbox_id)
    _close_selected(s)


@handles(c.Unselect)
async def unselect(s: Session, cmd: c.Unselect) -> None:
    """RFC 3691 / RFC 9051 §6.4.2: leave the selected state without expunging."""
    s.need_selected()
    _close_selected(s)


VALID_USES = {"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash"}


@handles(c.Create)
async def create(s: Session, cmd: c.Create) -> None:
    """RFC 9051 §6.3.4; CREATE ... (USE (\\Sent)) from RFC 6154 §3."""
    name = s.mailbox_name(cmd.mailbox)
    use = ""
    if cmd.special_use:
        canon = {u.lower(): u for u in VALID_USES}
        if len(cmd.special_use) > 1 or cmd.special_use[0].lower() not in canon:
            raise No("Only one of " + " ".join(sorted(VALID_USES)) + " is allowed", "USEATTR")
        use = canon[cmd.special_use[0].lower()]
    if name.upper() == "INBOX":
        raise No("INBOX always exists", "ALREADYEXISTS")
    await run_db_write(store.create_mailbox, s.account_id, name, use)


@handles(c.Delete)
async def delete(s: Session, cmd: c.Delete) -> None:
    name = s.mailbox_name(cmd.mailbox)
    await run_db_write(store.delete_mailbox, s.account_id, name)
    if s.selected is not None and s.selected.info.name == name:
        _close_selected(s)


@handles(c.Rename)
async def rename(s: Session, cmd: c.Rename) -> None:
    old, new = s.mailbox_name(cmd.old), s.mailbox_name(cmd.new)
    if new.upper() == "INBOX":
        raise No("INBOX always exists", "ALREADYEXISTS")
    await run_db_write(store.rename_mailbox, s.account_id, old, new)


@handles(c.Subscribe)
async def subscribe(s: Session, cmd: c.Subscribe) -> None:
    name = s.mailbox_name(cmd.mailbox)
    await run_db_write(store.set_subscribed, s.account_id, name, cmd.subscribe)


@handles(c.Namespace)
async def namespace(s: Session, cmd: c.Namespace) -> None:
    """RFC 2342: one personal namespace, "" with the "/" delimiter; no shared ones."""
    s.untagged(b'NAMESPACE (("" "/")) NIL NIL')


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """LIST wildcards (RFC 9051 §6.3.9): `*` matches anything, `%` anything but `/`."""
    head, sep, rest = pattern.partition(DELIMITER)
    if head.upper() == "INBOX":
        pattern = "INBOX" + sep + rest
    out = []
    for ch in pattern:
        if ch == "*":
            out.append(".*")
        elif ch == "%":
            out.append("[^/]*")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.S)


def _matches(name: str, regex: re.Pattern[str]) -> bool:
    if regex.fullmatch(name):
        return True
    # INBOX matches case-insensitively (RFC 9051 §5.1)
    return name == "INBOX" and bool(regex.fullmatch("INBOX"))


@handles(c.List)
async def list_(s: Session, cmd: c.List) -> None:
    """LIST and LSUB (RFC 9051 §6.3.9, RFC 3501 §6.3.9), LIST-EXTENDED (RFC 5258),
    LIST-STATUS (RFC 5819), SPECIAL-USE (RFC 6154), CHILDREN (RFC 3348)."""
    verb = b"LSUB" if cmd.lsub else b"LIST"
    reference = s.mailbox_name(cmd.reference) if cmd.reference else ""
    patterns = []
    for raw in cmd.patterns:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise Bad("Pattern is not UTF-8") from e
        if not s.utf8 and "&" in text:
            from mailhost.mail import utf7

            try:
                text = utf7.decode(text)
            except utf7.InvalidUtf7:
                pass
        patterns.append(text)
    if not cmd.extended and patterns == [""]:
        # RFC 9051 §6.3.9: an empty pattern asks for the delimiter and root.
        s.untagged(verb + b' (\\Noselect) "/" ""')
        return
    boxes: list[MailboxInfo] = await run_db(store.list_mailboxes, s.account_id)
    names = {b.name for b in boxes}
    children = {p for n in names for p in _parents(n)}
    subscribed_only = cmd.lsub or "SUBSCRIBED" in cmd.select_opts
    show_subscribed = subscribed_only or "SUBSCRIBED" in cmd.return_opts
    special_only = "SPECIAL-USE" in cmd.select_opts
    show_special = not cmd.extended or "SPECIAL-USE" in cmd.return_opts or special_only
    regexes = []
    for pattern in patterns:
        if not pattern:
            continue
        full = pattern
        if reference and not pattern.startswith(DELIMITER):
            full = reference + ("" if reference.endswith(DELIMITER) else DELIMITER) + pattern
            if reference.endswith(DELIMITER):
                full = reference + pattern
        regexes.append(pattern_regex(full))
    matched: list[MailboxInfo] = []
    childinfo: list[str] = []
    for box in boxes:
        if not any(_matches(box.name, r) for r in regexes):
            continue
        if special_only and not box.special_use:
            continue
        if subscribed_only and not box.subscribed:
            if "RECURSIVEMATCH" in cmd.select_opts and any(
                b.subscribed and b.name.startswith(box.name + DELIMITER) for b in boxes
            ):
                childinfo.append(box.name)
            continue
        matched.append(box)
    status_map: dict[int, MailboxStatus] = {}
    if "STATUS" in cmd.return_opts and matched:
        status_map = await run_db(imapview.statuses, s.account_id, [b.id for b in matched])
    entries = sorted(
        [(b.name, b) for b in matched] + [(n, None) for n in childinfo],
        key=lambda e: (e[0] != "INBOX", e[0]),
    )
    for name, box in entries:
        attrs = []
        if name in children:
            attrs.append("\\HasChildren")
        else:
            attrs.append("\\HasNoChildren")
        if box is None:
            line = verb + b" (" + " ".join(attrs).encode() + b') "/" ' + s.wire_name(name)
            s.untagged(line + b' ("CHILDINFO" ("SUBSCRIBED"))')
            continue
        if show_subscribed and box.subscribed and not cmd.lsub:
            attrs.append("\\Subscribed")
        if show_special and box.special_use:
            attrs.append(box.special_use)
        s.untagged(verb + b" (" + " ".join(attrs).encode() + b') "/" ' + s.wire_name(name))
        st = status_map.get(box.id)
        if st is not None:
            items = _status_items(s, st, cmd.status_items)
            s.untagged(b"STATUS " + s.wire_name(name) + b" " + items)


def _parents(name: str) -> list[str]:
    parts = name.split(DELIMITER)
    return [DELIMITER.join(parts[:i]) for i in range(1, len(parts))]


def _status_items(s: Session, st: MailboxStatus, items: tuple[str, ...]) -> bytes:
    values = {
        "MESSAGES": st.messages,
        "RECENT": st.recent,
        "UIDNEXT": st.mailbox.uidnext,
        "UIDVALIDITY": st.mailbox.uidvalidity,
        "UNSEEN": st.unseen,
        "DELETED": st.deleted,
        "SIZE": st.size,
        "HIGHESTMODSEQ": st.mailbox.highestmodseq,
        "APPENDLIMIT": settings.BUZON_MAX_MESSAGE_SIZE,
    }
    out = []
    for item in items:
        out.append(b"%s %d" % (item.encode(), values[item]))
    return b"(" + b" ".join(out) + b")"


@handles(c.Status)
async def status(s: Session, cmd: c.Status) -> None:
    """RFC 9051 §6.3.11, with SIZE (RFC 8438), DELETED, HIGHESTMODSEQ (RFC 7162 §3.1.6)."""
    name = s.mailbox_name(cmd.mailbox)
    st = await run_db(imapview.mailbox_status, s.account_id, name)
    if "HIGHESTMODSEQ" in cmd.items:
        s.condstore = True
    s.untagged(b"STATUS " + s.wire_name(st.mailbox.name) + b" " + _status_items(s, st, cmd.items))


@handles(c.Append)
async def append(s: Session, cmd: c.Append) -> tuple[str, str]:
    """RFC 9051 §6.3.12 with APPENDUID (RFC 4315 §3) and APPENDLIMIT (RFC 7889)."""
    name = s.mailbox_name(cmd.mailbox)
    if len(cmd.message) > settings.BUZON_MAX_MESSAGE_SIZE:
        raise No("Message is larger than APPENDLIMIT", "TOOBIG")
    if not cmd.message:
        raise No("Empty message", "CANNOT")
    flags = [f for f in cmd.flags if f.lower() != "\\recent"]
    for f in flags:
        if f.startswith("\\") and f.lower() not in {x.lower() for x in SYSTEM_FLAGS}:
            raise Bad(f"Unknown system flag {f[:40]}")
    # Parse and fsync the blob on the read pool, then only the transaction on the writer.
    prep = await run_db(messages.prepare, cmd.message)
    sel = s.selected
    to_selected = sel is not None and sel.info.name == name
    appended = await run_db_write(
        messages.append_prepared,
        s.account_id,
        name,
        prep,
        flags=flags,
        internaldate=cmd.internaldate,
        claim_recent=to_selected and not s.rev2 and not sel.readonly,
    )
    s.note_appended(appended)
    return (f"APPENDUID {appended.uidvalidity} {appended.uid}", "APPEND completed")


def _kib(n: int) -> int:
    return (n + 1023) // 1024


@handles(c.GetQuotaRoot)
async def getquotaroot(s: Session, cmd: c.GetQuotaRoot) -> None:
    """RFC 9208 §4.3.2: every mailbox is under the account's one root, ""."""
    name = s.mailbox_name(cmd.mailbox)
    await run_db(store.lookup_mailbox, s.account_id, name)
    used, limit = await run_db(store.quota, s.account_id)
    if not limit:
        s.untagged(b"QUOTAROOT " + s.wire_name(name))
        return
    s.untagged(b"QUOTAROOT " + s.wire_name(name) + b' ""')
    s.untagged(b'QUOTA "" (STORAGE %d %d)' % (_kib(used), limit // 1024))


@handles(c.GetQuota)
async def getquota(s: Session, cmd: c.GetQuota) -> None:
    used, limit = await run_db(store.quota, s.account_id)
    if cmd.root != b"" or not limit:
        raise No("No such quota root", "NONEXISTENT")
    s.untagged(b'QUOTA "" (STORAGE %d %d)' % (_kib(used), limit // 1024))


@handles(c.SetQuota)
async def setquota(s: Session, cmd: c.SetQuota) -> None:
    raise No("Quotas are set by the administrator", "NOPERM")
