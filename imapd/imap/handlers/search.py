"""SEARCH (RFC 9051 §6.4.4) with ESEARCH (RFC 4731), SEARCHRES (RFC 5182) and MODSEQ
(RFC 7162 §3.1.5); SORT and THREAD (RFC 5256).

The parser's criteria become the store's search tree here: sequence numbers and `$` are
turned into UID sets (only the session knows them), strings are decoded with the charset.
A tree of flag, UID and MODSEQ keys is answered from the view's cached flags when they are
current (flagsearch.py); everything else, and SORT/THREAD's row reads, ask the store.
"""

from __future__ import annotations

from mailhost.dbpool import run_db
from mailhost.store import search as store_search

from .. import commands as c
from .. import flagsearch, responses
from .. import threading as imap_threading
from ..errors import Bad, No
from ..selected import Selected
from ..session import SHORT_READ_ROWS, Session, handles

CHARSETS = {"UTF-8": "utf-8", "US-ASCII": "ascii"}


def _decode(value: bytes, charset: str) -> str:
    try:
        return value.decode(CHARSETS[charset])
    except UnicodeDecodeError as e:
        raise Bad(f"Search string is not valid {charset}") from e


def convert(node: object, sel: Selected, charset: str, state: dict) -> object:
    """Map parser criteria onto mailhost.store.search's Key/And/Or/Not (iteratively safe:
    the parser already bounded the depth)."""
    if isinstance(node, c.SearchAnd):
        return store_search.And(tuple(convert(k, sel, charset, state) for k in node.keys))
    if isinstance(node, c.SearchOr):
        return store_search.Or(
            convert(node.left, sel, charset, state), convert(node.right, sel, charset, state)
        )
    if isinstance(node, c.SearchNot):
        return store_search.Not(convert(node.key, sel, charset, state))
    assert isinstance(node, c.SearchKey)
    name, args = node.name, node.args
    if name == "SEQSET":
        seqset = args[0]
        uids = sel.resolve(seqset, uid=False, strict=False)
        return store_search.Key("SEQSET", (frozenset(uids),))
    if name == "UID":
        return store_search.Key("UID", (frozenset(sel.resolve(args[0], uid=True)),))
    if name == "MODSEQ":
        state["modseq"] = True
    if name in ("BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"):
        return store_search.Key(name, (_decode(args[0], charset),))
    if name == "HEADER":
        return store_search.Key(name, (_decode(args[0], charset), _decode(args[1], charset)))
    return store_search.Key(name, tuple(args))


async def run_search(s: Session, criteria: object, charset: str | None) -> tuple[list[int], bool]:
    """Return (matching UIDs the session knows, whether MODSEQ was a criterion)."""
    sel = s.need_selected()
    charset = (charset or "UTF-8").upper()
    if charset not in CHARSETS:
        raise No("Unsupported charset", "BADCHARSET (UTF-8 US-ASCII)")
    state: dict = {}
    tree = convert(criteria, sel, charset, state)
    if state.get("modseq"):
        s.condstore = True
    recent_from = min(sel.recent) if sel.recent and not s.rev2 else None
    if recent_from is None and not s.rev2:
        recent_from = sel.uidnext + 1_000_000_000  # nothing is \Recent for us
    # Flags, UIDs and MODSEQ alone (`UNSEEN`, `NOT DELETED`): the view's cached flags
    # answer when no event says they are stale, as the store would (flagsearch.py).
    if s.in_sync():
        found = flagsearch.search(sel, tree, recent_from_uid=recent_from)
        if found is not None:
            return found, bool(state.get("modseq"))
    # SQL-only keys on a small mailbox make a short read (one statement, no blobs): inline
    # on SQLite. The mailbox size is checked first, as is_cheap sorts UID sets.
    cheap = len(sel.uids) <= SHORT_READ_ROWS and store_search.is_cheap(tree)
    rows = len(sel.uids) if cheap else SHORT_READ_ROWS + 1
    try:
        uids = await s.read(
            store_search.search,
            s.account_id,
            sel.mailbox_id,
            tree,
            recent_from_uid=recent_from,
            rows=rows,
        )
    except store_search.SearchError as e:
        if e.code == "BAD":
            raise Bad(str(e)) from e
        if e.code == "BADCHARSET":
            raise No(str(e), "BADCHARSET (UTF-8 US-ASCII)") from e
        raise No(str(e), e.code) from e
    # Only UIDs the session knows (ascending): one set intersection, not a bisect each.
    known = sorted(set(uids).intersection(sel.uids))
    return known, bool(state.get("modseq"))


@handles(c.Search)
async def search(s: Session, cmd: c.Search) -> None:
    sel = s.need_selected()
    try:
        uids, with_modseq = await run_search(s, cmd.criteria, cmd.charset)
    except No:
        if cmd.returns is not None and "SAVE" in cmd.returns:
            sel.saved = []  # RFC 5182 §2.1: a failed SEARCH ... SAVE empties $
        raise
    numbers = uids if cmd.uid else [sel.seq_of(u) or 0 for u in uids]
    modseq = b""
    if with_modseq and uids:
        best = flagsearch.max_modseq(sel, uids) if s.in_sync() else None
        if best is None:
            best = await run_db(store_search.max_modseq, s.account_id, sel.mailbox_id, uids)
        modseq = b" (MODSEQ %d)" % best
    returns = cmd.returns
    if returns is None and not s.rev2:
        listed = " ".join(map(str, numbers)).encode()
        s.untagged(b"SEARCH" + (b" " + listed if numbers else b"") + modseq)
        return
    opts = set(returns or ())
    if not opts:  # RETURN () means ALL (RFC 4731 §3.1)
        opts.add("ALL")
    if "SAVE" in opts:
        # RFC 5182 §2.4: with MIN and/or MAX only, $ holds just those.
        if opts & {"ALL", "COUNT"} or not opts & {"MIN", "MAX"}:
            sel.saved = list(uids)
        else:
            sel.saved = (
                sorted(
                    {uids[0], uids[-1]}
                    if "MIN" in opts and "MAX" in opts
                    else {uids[0] if "MIN" in opts else uids[-1]}
                )
                if uids
                else []
            )
        opts.discard("SAVE")
        if not opts:
            return  # RFC 5182 §2.1: SAVE alone sends no ESEARCH
    out = b'ESEARCH (TAG "%s")' % cmd.tag.encode()
    if cmd.uid:
        out += b" UID"
    if numbers:
        if "MIN" in opts:
            out += b" MIN %d" % min(numbers)
        if "MAX" in opts:
            out += b" MAX %d" % max(numbers)
    if "COUNT" in opts:
        out += b" COUNT %d" % len(numbers)
    if numbers and "ALL" in opts:
        out += b" ALL " + responses.seqset(sorted(numbers))
    if modseq and numbers:
        out += b" MODSEQ " + modseq.strip(b" ()").split()[-1]
    s.untagged(out)


@handles(c.Sort)
async def sort(s: Session, cmd: c.Sort) -> None:
    """RFC 5256 §3: sort the matches; `* SORT` lists sequence numbers (UIDs for UID SORT)."""
    sel = s.need_selected()
    uids, _ = await run_search(s, cmd.criteria, cmd.charset)
    ordered: list[int] = []
    if uids:
        ordered = await run_db(_sorted, s.account_id, sel.mailbox_id, uids, list(cmd.keys))
    numbers = ordered if cmd.uid else [sel.seq_of(u) or 0 for u in ordered]
    s.untagged(b"SORT" + b"".join(b" %d" % n for n in numbers))


@handles(c.Thread)
async def thread(s: Session, cmd: c.Thread) -> None:
    """RFC 5256 §4: THREAD ORDEREDSUBJECT / REFERENCES."""
    sel = s.need_selected()
    if cmd.algorithm not in imap_threading.ALGORITHMS:
        raise Bad(f"Unknown threading algorithm {cmd.algorithm[:40]}")
    uids, _ = await run_search(s, cmd.criteria, cmd.charset)
    tree: list = []
    if uids:
        tree = await run_db(_threaded, s.account_id, sel.mailbox_id, uids, cmd.algorithm)
        if not cmd.uid:
            tree = imap_threading.map_threads(tree, lambda u: sel.seq_of(u) or 0)
    body = imap_threading.format_threads(tree)
    s.untagged(b"THREAD" + (b" " + body if body else b""))


# Off the event loop: sorting or threading 100,000 rows takes 0.1-1 s of CPU, which the
# pool thread gives up in GIL slices, so other sessions keep being served meanwhile.
def _sorted(account_id: int, mailbox_id: int, uids: list[int], keys: list) -> list[int]:
    rows = store_search.sort_rows(account_id, mailbox_id, uids)
    return imap_threading.sort_uids(rows, keys)


def _threaded(account_id: int, mailbox_id: int, uids: list[int], algorithm: str) -> list:
    rows = store_search.thread_rows(account_id, mailbox_id, uids)
    return imap_threading.thread(rows, algorithm)
