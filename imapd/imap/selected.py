"""The session's view of its selected mailbox: sequence numbers <-> UIDs, pending updates.

RFC 9051 §7.5.1 / RFC 3501 §7.4.1: sequence numbers change only when this session tells the
client about an expunge, so expunges learnt while answering FETCH, STORE or SEARCH (which
use sequence numbers) wait; the messages stay addressable until then. New messages (EXISTS)
and other sessions' flag changes (FETCH FLAGS) are reported between commands.

The view knows everything up to `highestmodseq`. It also caches flags (`flags`, uid ->
(flags, modseq)) for the UIDs it has read: every later change comes through `absorb` (other
sessions) or `note_flags` (this one), so while no event is waiting, `FETCH ... (FLAGS)` and
STORE's answer need no query. Each write bumps the mailbox's MODSEQ by one, so this
session's own writes (`note_own`) move `highestmodseq` on without asking the store, and the
events they cause need no `changes_since`; any gap (someone else's change) still does.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field

from mailhost.store.events import MailboxEvent
from mailhost.store.values import Changes, MailboxInfo, MessageFlags

from . import responses
from .commands import SeqSet
from .errors import Bad


@dataclass
class Selected:
    info: MailboxInfo
    uids: array  # ascending UIDs; index + 1 is the sequence number
    readonly: bool
    highestmodseq: int
    uidnext: int
    recent: set[int] = field(default_factory=set)  # \Recent for this session (rev1 only)
    claimed: set[int] = field(default_factory=set)  # own APPENDs claimed \Recent, not in uids yet
    pending_expunged: set[int] = field(default_factory=set)
    pending_flags: dict[int, MessageFlags] = field(default_factory=dict)
    own_changes: dict[int, int] = field(default_factory=dict)  # uid -> modseq we reported
    saved: list[int] = field(default_factory=list)  # SEARCHRES `$` (RFC 5182), as UIDs
    reported_exists: int = 0
    reported_recent: int = 0
    flags: dict[int, tuple[tuple[str, ...], int]] = field(default_factory=dict)
    known_modseqs: set[int] = field(default_factory=set)  # own writes above highestmodseq
    # Bumped whenever `uids` or `flags` change: what was rendered from them at one version
    # (the `UID FETCH 1:* (FLAGS)` answer, handlers/messages.py) is good while it holds.
    version: int = 0
    rendered: tuple[tuple, bytes] | None = None

    @property
    def mailbox_id(self) -> int:
        return self.info.id

    @property
    def exists(self) -> int:
        return len(self.uids)

    def seq_of(self, uid: int) -> int | None:
        i = bisect_left(self.uids, uid)
        if i < len(self.uids) and self.uids[i] == uid:
            return i + 1
        return None

    # -- sequence sets ---------------------------------------------------------------------
    def resolve(self, seqset: SeqSet, *, uid: bool, strict: bool = True) -> list[int]:
        """Return the UIDs (ascending, unique) a sequence set names.

        Sequence numbers beyond EXISTS are a client error (BAD) unless `strict` is False
        (SEARCH); UIDs that do not exist are simply skipped (RFC 9051 §6.4.9).
        """
        if seqset.saved:
            present = set(self.uids)
            return [u for u in self.saved if u in present]
        uids = self.uids
        if not uids:
            if uid or not strict or all(lo is None or hi is None for lo, hi in seqset.ranges):
                return []
            raise Bad("No messages: invalid sequence number")
        out: list[int] = []
        if uid:
            for lo, hi in seqset.resolve(uids[-1]):
                out.extend(uids[bisect_left(uids, lo) : bisect_right(uids, hi)])
        else:
            n = len(uids)
            for lo, hi in seqset.resolve(n):
                if hi > n:
                    if strict:
                        raise Bad(f"Invalid sequence number: the mailbox has {n} messages")
                    hi = n
                if lo <= hi:
                    out.extend(uids[lo - 1 : hi])
        if len(seqset.ranges) > 1:
            out = sorted(set(out))
        return out

    # -- flags cache and own writes -------------------------------------------------------
    def note_flags(self, uid: int, flags: tuple[str, ...], modseq: int) -> None:
        """Remember `uid`'s flags as of `modseq` (an older answer never replaces a newer)."""
        old = self.flags.get(uid)
        if old is None or modseq >= old[1]:
            if len(_FLAGSETS) < 10_000:
                flags = _FLAGSETS.setdefault(flags, flags)
            if old != (flags, modseq):
                self.flags[uid] = (flags, modseq)
                self.version += 1

    def cached_flags(self, uids: list[int]) -> list[tuple[int, tuple[str, ...], int]] | None:
        """(uid, flags, modseq) for every one of `uids`, or None if any is not cached."""
        cache = self.flags
        out = []
        for uid in uids:
            hit = cache.get(uid)
            if hit is None:
                return None
            out.append((uid, hit[0], hit[1]))
        return out

    def note_own(self, modseq: int) -> None:
        """This session's write took `modseq` and the view already shows its effect."""
        if modseq > self.highestmodseq:
            self.known_modseqs.add(modseq)
            while self.highestmodseq + 1 in self.known_modseqs:
                self.highestmodseq += 1
                self.known_modseqs.discard(self.highestmodseq)
            if self.own_changes and not self.known_modseqs:
                self.own_changes.clear()  # all at or below highestmodseq now

    def knows(self, event: MailboxEvent) -> bool:
        """Whether the view already shows `event` (so it needs no changes_since)."""
        if event.modseq <= 0:
            return False  # created/deleted/renamed
        if event.modseq <= self.highestmodseq or event.modseq in self.known_modseqs:
            return True
        if event.kind == "expunged" and event.uids:
            # Our own EXPUNGE/MOVE: every UID is one we had and have already removed.
            if all(u < self.uidnext and self.seq_of(u) is None for u in event.uids):
                self.note_own(event.modseq)
                return True
        return False

    # -- updates ---------------------------------------------------------------------------
    def absorb(self, changes: Changes) -> list[int]:
        """Take in what changed since our HIGHESTMODSEQ; return the new UIDs."""
        present_last = self.uids[-1] if self.uids else 0
        new: list[int] = []
        for uid in changes.expunged:
            if self.seq_of(uid) is not None:
                self.pending_expunged.add(uid)
                self.pending_flags.pop(uid, None)
        expunged = set(changes.expunged)
        for mf in changes.changed:
            if mf.uid not in expunged:
                self.note_flags(mf.uid, mf.flags, mf.modseq)
            if mf.uid > present_last:
                if mf.uid not in expunged:
                    new.append(mf.uid)
            elif self.own_changes.get(mf.uid) == mf.modseq:
                continue
            elif mf.uid not in self.pending_expunged and self.seq_of(mf.uid) is not None:
                self.pending_flags[mf.uid] = mf
        new.sort()
        self.uids.extend(new)
        self.version += 1
        self.highestmodseq = max(self.highestmodseq, changes.highestmodseq)
        self.uidnext = max(self.uidnext, changes.uidnext)
        self.known_modseqs = {m for m in self.known_modseqs if m > self.highestmodseq}
        while self.highestmodseq + 1 in self.known_modseqs:
            self.highestmodseq += 1
            self.known_modseqs.discard(self.highestmodseq)
        if not self.known_modseqs:
            self.own_changes.clear()
        return new

    def remove(self, uids: list[int], *, vanished: bool) -> list[bytes]:
        """Forget expunged UIDs; return the EXPUNGE (or VANISHED, RFC 7162 §3.2.10) lines."""
        lines: list[bytes] = []
        gone: list[int] = []
        for uid in sorted(set(uids)):
            seq = self.seq_of(uid)
            if seq is None:
                continue
            gone.append(uid)
            self.pending_expunged.discard(uid)
            self.pending_flags.pop(uid, None)
            self.recent.discard(uid)
            self.flags.pop(uid, None)
        if not gone:
            return lines
        self.version += 1
        if vanished:
            lines.append(responses.untagged(b"VANISHED", responses.seqset(gone)))
        # Report from the highest down so earlier sequence numbers stay valid while we go.
        for uid in reversed(gone):
            seq = self.seq_of(uid)
            assert seq is not None
            del self.uids[seq - 1]
            if not vanished:
                lines.append(responses.untagged(b"%d EXPUNGE" % seq))
        self.reported_exists = len(self.uids)
        return lines

    def exists_lines(self, *, rev1: bool) -> list[bytes]:
        lines = []
        if len(self.uids) != self.reported_exists:
            self.reported_exists = len(self.uids)
            lines.append(responses.untagged(b"%d EXISTS" % len(self.uids)))
            if rev1 and len(self.recent) != self.reported_recent:
                self.reported_recent = len(self.recent)
                lines.append(responses.untagged(b"%d RECENT" % len(self.recent)))
        return lines


# Flag tuples are few (a handful of combinations per mailbox): share them between entries.
_FLAGSETS: dict[tuple[str, ...], tuple[str, ...]] = {}
