"""SEARCH answered from the selected view's cached flags, without a query (RFC 9051 §6.4.4).

While the view is in sync (`Session.in_sync`) and holds every message's flags (`sel.flags`,
uid -> (flags, modseq)), keys that flags, UIDs, sequence numbers and MODSEQ decide alone
need no database: ALL, the system flags and their UN- forms, KEYWORD/UNKEYWORD, NEW, OLD,
RECENT, UID, sequence sets (already UID sets, see handlers/search.py `convert`) and
MODSEQ (RFC 7162 §3.1.5), under AND/OR/NOT. Anything else returns None and the caller
asks the store, as it does for any tree this module is not sure to decide exactly.

Each key means what `mailhost.store.search._key_bound` makes it mean in SQL:

- \\Recent is `uid >= recent_from_uid` (None: nothing is recent), NEW is RECENT UNSEEN and
  OLD is NOT RECENT (RFC 3501 §6.4.4; IMAP4rev2 has no \\Recent, the caller passes None).
- KEYWORD matches a whole word of the keyword list, ignoring case: the store compares with
  LIKE (SQLite folds ASCII only) or UPPER() (PostgreSQL, by the database's locale), so only
  ASCII is decided here; a non-ASCII needle, or a non-ASCII keyword in the mailbox, goes to
  the store. An empty needle or one with white space matches nothing, as in the store.
  The cached words come from `flags.join`, which splits the stored list on any white
  space where SQL splits on spaces: they agree as long as no keyword holds other white
  space, which IMAP atoms cannot (only an imported dovecot-keywords name could).
- MODSEQ n is `modseq >= n`; UID and sequence sets are set membership.
- Messages whose expunge waits to be reported (`pending_expunged`) are gone from the store
  and match nothing.

The tree is evaluated as UID sets: one pass groups the messages by flag tuple (they are
few, see selected.py `_FLAGSETS`), a flag key is tested once per group, and AND/OR/NOT
are set operations.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable
from itertools import compress
from operator import itemgetter

from mailhost.store.search import MAX_DEPTH, MAX_NODES, MAX_STRING, And, Key, Not, Or

from .selected import Selected

__all__ = ["KEYS", "decidable", "max_modseq", "search"]

Flags = tuple[str, ...]
_MODSEQ = itemgetter(1)

_FLAG_KEYS: dict[str, tuple[str, bool]] = {
    "ANSWERED": ("\\Answered", True),
    "DELETED": ("\\Deleted", True),
    "DRAFT": ("\\Draft", True),
    "FLAGGED": ("\\Flagged", True),
    "SEEN": ("\\Seen", True),
    "UNANSWERED": ("\\Answered", False),
    "UNDELETED": ("\\Deleted", False),
    "UNDRAFT": ("\\Draft", False),
    "UNFLAGGED": ("\\Flagged", False),
    "UNSEEN": ("\\Seen", False),
}
_NO_ARGS = frozenset({"ALL", "NEW", "OLD", "RECENT", *_FLAG_KEYS})
#: The keys decided here; any other sends the whole tree to the store.
KEYS = frozenset({*_NO_ARGS, "KEYWORD", "UNKEYWORD", "MODSEQ", "UID", "SEQSET"})


class _Declined(Exception):
    """The cache cannot decide this tree exactly (found while evaluating it)."""


def decidable(tree: object) -> bool:
    """Whether every key of `tree` is one of KEYS, well formed, and the tree is within the
    store's bounds. Trees the store would refuse (BAD, LIMIT) are not: it answers those."""
    stack: list[tuple[object, int]] = [(tree, 1)]
    nodes = 0
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH or nodes > MAX_NODES:
            return False
        if isinstance(node, Key):
            if not _well_formed(node):
                return False
        elif isinstance(node, And):
            if not isinstance(node.keys, tuple | list):
                return False
            stack.extend((k, depth + 1) for k in node.keys)
        elif isinstance(node, Or):
            stack.extend(((node.left, depth + 1), (node.right, depth + 1)))
        elif isinstance(node, Not):
            stack.append((node.key, depth + 1))
        else:
            return False
    return True


def _well_formed(key: Key) -> bool:
    """The store's own argument checks (search._check_key), for the keys of KEYS."""
    name, args = key.name, key.args
    if name not in KEYS or not isinstance(args, tuple):
        return False
    if name in _NO_ARGS:
        return not args
    if name == "MODSEQ":  # RFC 7162 §3.1.5: [entry-name entry-type] modseq, the last counts
        return bool(args) and _is_int(args[-1]) and args[-1] >= 0
    if len(args) != 1:
        return False
    if name in ("UID", "SEQSET"):
        return isinstance(args[0], frozenset)  # what `convert` makes
    return isinstance(args[0], str | bytes) and len(args[0]) <= MAX_STRING  # (UN)KEYWORD


def search(sel: Selected, tree: object, *, recent_from_uid: int | None) -> list[int] | None:
    """Return the UIDs (ascending) of the view's messages that match `tree`, as
    mailhost.store.search.search would with the same `recent_from_uid`, or None when the
    cache cannot say: a message's flags are not cached, or a key is not decided here.

    The caller checks that the view is in sync first (Session.in_sync), so the cached flags
    are the store's."""
    if not decidable(tree):
        return None
    try:
        found = _Evaluation(sel, recent_from_uid).node(tree)
    except _Declined:
        return None
    if sel.pending_expunged:
        found = found - sel.pending_expunged
    return sorted(found)


def max_modseq(sel: Selected, uids: list[int]) -> int | None:
    """The highest cached MODSEQ of `uids` (RFC 7162 §3.1.6), None if one is not cached."""
    cached = sel.cached_flags(uids)
    if cached is None:
        return None
    return max((modseq for _, _, modseq in cached), default=0)


class _Evaluation:
    """One tree over one view: each node becomes the set of UIDs that match it."""

    def __init__(self, sel: Selected, recent_from_uid: int | None) -> None:
        self.uids = sel.uids
        self.cache = sel.flags
        self.recent_from_uid = recent_from_uid
        self._all: set[int] | None = None
        self._keys: dict[Key, set[int]] = {}
        self._words: dict[Flags, frozenset[str]] = {}
        # One pass over the mailbox groups the UIDs by flag tuple; a KeyError means some
        # message is not cached, and the store answers.
        groups: defaultdict[Flags, list[int]] = defaultdict(list)
        cache = self.cache
        try:
            for uid in self.uids:
                groups[cache[uid][0]].append(uid)
        except KeyError:
            raise _Declined from None
        self.groups = groups

    def all(self) -> set[int]:
        if self._all is None:
            self._all = set(self.uids)
        return self._all

    def node(self, node: object) -> set[int]:
        """Recursive; decidable() has bounded the depth to the store's MAX_DEPTH."""
        if isinstance(node, Key):
            found = self._keys.get(node)
            if found is None:
                found = self._keys[node] = self.key(node)
            return found
        if isinstance(node, Not):
            return self.all() - self.node(node.key)
        if isinstance(node, Or):
            return self.node(node.left) | self.node(node.right)
        assert isinstance(node, And)
        if not node.keys:
            return self.all()
        parts = sorted((self.node(k) for k in node.keys), key=len)
        return parts[0].intersection(*parts[1:])

    def key(self, key: Key) -> set[int]:
        name, args = key.name, key.args
        if name in _FLAG_KEYS:
            flag, present = _FLAG_KEYS[name]
            return self.where(lambda flags: (flag in flags) is present)
        if name == "ALL":
            return self.all()
        if name in ("RECENT", "NEW", "OLD"):
            recent = self.recent()
            if name == "OLD":
                return self.all() - recent
            if name == "NEW":  # RFC 3501 §6.4.4: RECENT UNSEEN
                return recent & self.node(Key("UNSEEN"))
            return recent
        if name in ("UID", "SEQSET"):
            return self.all().intersection(args[0])
        if name == "MODSEQ":
            modseqs = map(_MODSEQ, map(self.cache.__getitem__, self.uids))
            return set(compress(self.uids, map(args[-1].__le__, modseqs)))
        found = self.keyword(args[0])
        return found if name == "KEYWORD" else self.all() - found

    def where(self, test: Callable[[Flags], bool]) -> set[int]:
        """The UIDs whose flag tuple passes `test` (asked once per distinct tuple)."""
        out: set[int] = set()
        for flags, members in self.groups.items():
            if test(flags):
                out.update(members)
        return out

    def recent(self) -> set[int]:
        if self.recent_from_uid is None:
            return set()
        return set(self.uids[bisect_left(self.uids, self.recent_from_uid) :])

    def keyword(self, needle: str | bytes) -> set[int]:
        if isinstance(needle, bytes):
            needle = needle.decode("utf-8", "replace")  # as the store's _text
        if not needle or any(c in needle for c in " \t\r\n"):
            return set()  # no stored keyword is empty or contains a space
        if not needle.isascii():
            raise _Declined  # the database's case folding, not ours, decides
        word = needle.upper()
        return self.where(lambda flags: word in self.words(flags))

    def words(self, flags: Flags) -> frozenset[str]:
        """The upper-cased words of the keyword list stored with these flags."""
        words = self._words.get(flags)
        if words is None:
            keywords = [f for f in flags if not f.startswith("\\")]
            if not all(k.isascii() for k in keywords):
                raise _Declined
            words = self._words[flags] = frozenset(k.upper() for k in keywords)
        return words


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
