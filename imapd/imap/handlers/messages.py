"""Message commands: FETCH, STORE, COPY, MOVE, EXPUNGE (and their UID forms)."""

from __future__ import annotations

from bisect import bisect_left

from mailhost import store
from mailhost.dbpool import run_db, run_db_short, run_db_write
from mailhost.store import imapview

from .. import commands as c
from .. import fetchdata, responses
from ..errors import Bad, No
from ..session import SHORT_READ_ROWS, Session, handles

# Messages per read: with bodies a chunk is a short read (mailhost.dbpool.run_db_short), so
# on SQLite it runs on the event loop, which then sends it before reading the next.
FETCH_CHUNK = 50
FETCH_CHUNK_NO_BODY = 500
# The last `UID FETCH 1:* (FLAGS)` answer a session keeps for a repeat (clients without
# CONDSTORE poll with it), when it is at most this long (about 800 messages).
RENDERED_MAX = 32 * 1024


@handles(c.Fetch)
async def fetch(s: Session, cmd: c.Fetch) -> None:
    """RFC 9051 §6.4.5; CHANGEDSINCE/VANISHED (RFC 7162 §3.1.4.1, §3.2.6)."""
    sel = s.need_selected()
    uids = sel.resolve(cmd.seqset, uid=cmd.uid)
    items = list(cmd.items)
    if cmd.changedsince is not None or any(i.name == "MODSEQ" for i in items):
        s.condstore = True
        if not any(i.name == "MODSEQ" for i in items):
            items.append(c.FetchAtt("MODSEQ"))
    if cmd.vanished:
        if not s.qresync:
            raise Bad("VANISHED needs ENABLE QRESYNC")
        changes = await run_db(store.changes_since, s.account_id, sel.mailbox_id, cmd.changedsince)
        if changes.expunged and cmd.seqset.ranges:
            ranges = cmd.seqset.resolve(sel.uidnext)
            gone = [u for u in changes.expunged if any(lo <= u <= hi for lo, hi in ranges)]
            if gone:
                s.untagged(b"VANISHED (EARLIER) " + responses.seqset(gone))
    if not uids:
        return
    seen_changed: set[int] = set()
    if not sel.readonly and any(fetchdata.sets_seen(i) for i in items):
        result = await run_db_write(store.set_flags, s.account_id, sel.mailbox_id, uids, ["\\Seen"])
        for mf in result.changed:
            sel.own_changes[mf.uid] = mf.modseq
            sel.note_flags(mf.uid, mf.flags, mf.modseq)
            seen_changed.add(mf.uid)
        if result.changed:
            sel.note_own(result.changed[0].modseq)
        if seen_changed and not any(i.name == "FLAGS" for i in items):
            items.append(c.FetchAtt("FLAGS"))  # RFC 9051 §6.4.5: report the implicit change
    want_row = any(fetchdata.needs_row(i) for i in items)
    want = frozenset().union(*(fetchdata.columns(i) for i in items))
    if not want_row:
        await _fetch_flags(s, uids, items, cmd.changedsince)
        return
    chunk = FETCH_CHUNK if "raw" in want else FETCH_CHUNK_NO_BODY
    renderers = [fetchdata.renderer(att) for att in items]
    recent = sel.recent if not s.rev2 else ()
    serialised: dict[tuple[tuple[str, ...], bool], bytes] = {}
    for i in range(0, len(uids), chunk):
        part = uids[i : i + chunk]
        # Flags the view knows to be current let cached messages skip the database
        # (mailhost/store/fetchcache.py); a copy, as the read may run on a pool thread.
        known = None
        if s.in_sync():
            cache = sel.flags
            known = {u: cache[u] for u in part if u in cache}
        rows = await run_db_short(
            imapview.fetch_rows, s.account_id, sel.mailbox_id, part, want=want, flags=known
        )
        out = []
        for row in rows:
            uid = row.uid
            sel.note_flags(uid, row.flags, row.modseq)
            if cmd.changedsince is not None and row.modseq <= cmd.changedsince:
                continue
            seq = sel.seq_of(uid)
            if seq is None:
                continue
            key = (row.flags, uid in recent)
            flags = serialised.get(key)
            if flags is None:
                flags = serialised[key] = s.flags_bytes(uid, row.flags)
            parts = [render(row, flags, uid) for render in renderers]
            out.append(b"* %d FETCH (%s)\r\n" % (seq, b" ".join(parts)))
        s.send(b"".join(out))
        if i + chunk < len(uids):
            await s.drain()  # backpressure between chunks; the last goes with the OK


_FLAG_ITEMS = {"UID": (b"UID %d", 0), "FLAGS": (b"FLAGS %s", 1), "MODSEQ": (b"MODSEQ (%d)", 2)}


async def _fetch_flags(s: Session, uids: list[int], items: list, changedsince: int | None) -> None:
    """FETCH of UID, FLAGS and MODSEQ only (`UID FETCH 1:* (FLAGS)`, a client's resync):
    one %-format per message, the flag lists serialised once per distinct set."""
    sel = s.need_selected()
    cache = sel.flags
    in_cache = s.in_sync() and all(u in cache for u in uids)
    names = tuple(i.name for i in items)
    # resolve() gives UIDs of the view, ascending: all of them means seq = index + 1.
    if in_cache and names == ("UID", "FLAGS") and changedsince is None:
        if len(uids) == len(sel.uids) and len(uids) <= SHORT_READ_ROWS:
            _fetch_uid_flags(s, uids)
            return
    if in_cache:
        triples = [(u, *cache[u]) for u in uids]
        whole = len(uids) == len(sel.uids)
    else:
        rows = await s.read(imapview.flag_rows, s.account_id, sel.mailbox_id, uids, rows=len(uids))
        triples = []
        for row in rows:
            sel.note_flags(row.uid, row.flags, row.modseq)
            triples.append((row.uid, row.flags, row.modseq))
        whole = False
    template = b"* %%d FETCH (%s)\r\n" % b" ".join(_FLAG_ITEMS[n][0] for n in names)
    picks = tuple(_FLAG_ITEMS[n][1] for n in names)
    recent = sel.recent if not s.rev2 else ()
    serialised: dict[tuple[str, ...], bytes] = {}
    serialised_recent: dict[tuple[str, ...], bytes] = {}
    all_uids = sel.uids
    out = []
    for i, (uid, flags, modseq) in enumerate(triples):
        if changedsince is not None and modseq <= changedsince:
            continue
        if whole:
            seq = i + 1
        else:
            seq = bisect_left(all_uids, uid) + 1
            if seq > len(all_uids) or all_uids[seq - 1] != uid:
                continue
        if uid in recent:
            fb = serialised_recent.get(flags)
            if fb is None:
                fb = serialised_recent[flags] = responses.flag_list((*flags, "\\Recent"))
        else:
            fb = serialised.get(flags)
            if fb is None:
                fb = serialised[flags] = responses.flag_list(flags)
        values = (uid, fb, modseq)
        out.append(template % (seq, *[values[p] for p in picks]))
        if len(out) >= 1000:
            s.send(b"".join(out))
            out.clear()
            await s.drain()
    s.send(b"".join(out))


def _fetch_uid_flags(s: Session, uids: list[int]) -> None:
    """`UID FETCH 1:* (FLAGS)` from the view's cache, the commonest resync: one
    comprehension, each distinct flag list (with or without \\Recent) serialised once."""
    sel = s.need_selected()
    cache = sel.flags
    recent = sel.recent if not s.rev2 else ()
    key = (sel.version, len(uids), len(recent))
    if sel.rendered is not None and sel.rendered[0] == key:
        s.send(sel.rendered[1])  # nothing changed since the last time: the same answer
        return
    distinct = {cache[u][0] for u in uids}
    plain = {f: responses.flag_list(f) for f in distinct}
    marked = {f: responses.flag_list((*f, "\\Recent")) for f in distinct} if recent else plain
    template = b"* %d FETCH (UID %d FLAGS %s)\r\n"
    out = [
        template % (seq, uid, (marked if uid in recent else plain)[cache[uid][0]])
        for seq, uid in enumerate(uids, 1)
    ]
    data = b"".join(out)
    sel.rendered = (key, data) if len(data) <= RENDERED_MAX else None
    s.send(data)


async def _flag_rows(s: Session, uids: list[int]) -> list[imapview.FlagRow]:
    """Flags of `uids` from the view's cache when no event says they may have changed,
    else from the store (and then cached)."""
    sel = s.need_selected()
    if s.in_sync():
        cached = sel.cached_flags(uids)
        if cached is not None:
            return [imapview.FlagRow(uid, modseq, flags) for uid, flags, modseq in cached]
    rows = await s.read(imapview.flag_rows, s.account_id, sel.mailbox_id, uids, rows=len(uids))
    for row in rows:
        sel.note_flags(row.uid, row.flags, row.modseq)
    return rows


@handles(c.Store)
async def store_(s: Session, cmd: c.Store) -> object:
    """RFC 9051 §6.4.6; UNCHANGEDSINCE and [MODIFIED] from RFC 7162 §3.1.3."""
    sel = s.need_selected()
    if sel.readonly:
        raise No("Mailbox is read-only", "READ-ONLY")
    uids = sel.resolve(cmd.seqset, uid=cmd.uid)
    flags = [f for f in cmd.flags if f.lower() != "\\recent"]
    for f in flags:
        if f.startswith("\\") and f.lower() not in (
            "\\seen",
            "\\answered",
            "\\flagged",
            "\\deleted",
            "\\draft",
        ):
            raise Bad(f"Unknown system flag {f[:40]}")
    if cmd.unchangedsince is not None:
        s.condstore = True
    if not uids:
        return None
    result = await run_db_write(
        store.set_flags,
        s.account_id,
        sel.mailbox_id,
        uids,
        flags,
        cmd.mode,
        unchanged_since=cmd.unchangedsince,
    )
    changed = {mf.uid: mf for mf in result.changed}
    for mf in result.changed:
        sel.own_changes[mf.uid] = mf.modseq
        sel.pending_flags.pop(mf.uid, None)
        sel.note_flags(mf.uid, mf.flags, mf.modseq)
    if result.changed:
        sel.note_own(result.changed[0].modseq)
    modified = set(result.modified)
    report: dict[int, tuple[tuple[str, ...], int]] = {
        u: (mf.flags, mf.modseq) for u, mf in changed.items()
    }
    if not cmd.silent:
        rest = [u for u in uids if u not in changed and u not in modified]
        if rest:
            for row in await _flag_rows(s, rest):
                report[row.uid] = (row.flags, row.modseq)
    out = []
    for uid in sorted(report):
        seq = sel.seq_of(uid)
        if seq is None:
            continue
        flags_now, modseq = report[uid]
        parts = []
        if cmd.uid:
            parts.append(b"UID %d" % uid)
        if not cmd.silent:
            parts.append(b"FLAGS " + s.flags_bytes(uid, flags_now))
        elif not (s.condstore and uid in changed):
            continue
        if s.condstore:
            parts.append(b"MODSEQ (%d)" % modseq)
        out.append(b"* %d FETCH (%s)\r\n" % (seq, b" ".join(parts)))
    s.send(b"".join(out))
    if modified:
        if cmd.uid:
            numbers = sorted(modified)
        else:
            numbers = sorted(q for q in (sel.seq_of(u) for u in modified) if q)
        return ("MODIFIED " + responses.seqset(numbers).decode(), "Conditional STORE failed")
    return None


def _copyuid(result) -> str:
    """COPYUID (RFC 4315 §3): both UID lists in the same order, so compress only when
    both ascend."""
    src, dst = result.source_uids, result.dest_uids
    if _ascending(src) and _ascending(dst):
        src_text, dst_text = responses.seqset(src).decode(), responses.seqset(dst).decode()
    else:
        src_text, dst_text = ",".join(map(str, src)), ",".join(map(str, dst))
    return f"COPYUID {result.uidvalidity} {src_text} {dst_text}"


def _ascending(values: list[int]) -> bool:
    return all(a < b for a, b in zip(values, values[1:], strict=False))


@handles(c.Copy)
async def copy(s: Session, cmd: c.Copy) -> object:
    """RFC 9051 §6.4.7 with COPYUID (RFC 4315 §3)."""
    sel = s.need_selected()
    uids = sel.resolve(cmd.seqset, uid=cmd.uid)
    dest = s.mailbox_name(cmd.mailbox)
    if not uids:
        await run_db(store.lookup_mailbox, s.account_id, dest)
        return None
    result = await run_db_write(store.copy, s.account_id, sel.mailbox_id, uids, dest)
    if not result.source_uids:
        return None
    return (_copyuid(result), "COPY completed")


@handles(c.Move)
async def move(s: Session, cmd: c.Move) -> object:
    """RFC 6851 §3: COPYUID in an untagged OK, then EXPUNGE (or VANISHED) for the originals."""
    sel = s.need_selected()
    if sel.readonly:
        raise No("Mailbox is read-only", "READ-ONLY")
    uids = sel.resolve(cmd.seqset, uid=cmd.uid)
    dest = s.mailbox_name(cmd.mailbox)
    if not uids:
        await run_db(store.lookup_mailbox, s.account_id, dest)
        return None
    result = await run_db_write(store.move, s.account_id, sel.mailbox_id, uids, dest)
    if result.source_uids:
        s.send(responses.status(None, b"OK", "Moved", _copyuid(result)))
        for line in sel.remove(result.source_uids, vanished=s.qresync):
            s.send(line)
    return None


@handles(c.Expunge)
async def expunge(s: Session, cmd: c.Expunge) -> None:
    """RFC 9051 §6.4.3; UID EXPUNGE (RFC 4315 §2.1) removes only the given UIDs."""
    sel = s.need_selected()
    if sel.readonly:
        raise No("Mailbox is read-only", "READ-ONLY")
    uids = None
    if cmd.uids is not None:
        uids = sel.resolve(cmd.uids, uid=True)
        if not uids:
            return
    gone = await run_db_write(store.expunge, s.account_id, sel.mailbox_id, uids)
    for line in sel.remove(gone, vanished=s.qresync):
        s.send(line)
