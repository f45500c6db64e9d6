"""Fast reads for the IMAP server: the selected-mailbox view and FETCH rows.

Read-only helpers over the store's tables, shaped for what IMAP asks most often on big
mailboxes (`SELECT`, `UID FETCH 1:* (FLAGS)`). Writes stay in `messages.py`.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ..models import Mailbox, Message
from . import fetchcache
from . import flags as flagbits
from .cursors import cursor as raw_cursor
from .errors import MailboxNotFound
from .mailboxes import get as get_mailbox
from .names import normalize as normalize_name
from .values import MailboxInfo

IN_LIMIT = 900  # SQLite's parameter limit is 999 on old builds

# The hot reads below are plain SQL over the store's tables (same conditions as the ORM
# queries they replace): building an ORM query costs more CPU than running it here, and
# one process's CPU is what limits IMAP throughput (bench/README.md).
_MESSAGE = Message._meta.db_table
_MAILBOX = Mailbox._meta.db_table
_CONTENT = Message._meta.get_field("content").related_model._meta.db_table


@dataclass(frozen=True)
class OpenedMailbox:
    """What SELECT/EXAMINE needs, read so that later changes all have a higher MODSEQ."""

    info: MailboxInfo
    uids: array  # ascending, array('q')
    first_recent_uid: int  # UIDs at or above it are \Recent for this session
    first_unseen_uid: int | None
    flags: dict[int, tuple[tuple[str, ...], int]] | None = None  # uid -> (flags, modseq)


def open_mailbox(
    account_id: int, name: str, *, want_unseen: bool, with_flags: bool = False
) -> OpenedMailbox:
    """Read the mailbox row first, then its UIDs below that UIDNEXT: a message added in
    between has a higher MODSEQ and UID, so the session's next changes_since() reports it.
    With `with_flags` (small mailboxes) the same query reads every message's flags too,
    so the session's first `FETCH 1:* (FLAGS)` needs no query of its own.
    Read only; `first_recent_uid` is where \\Recent starts before any claim (the caller
    claims with messages.claim_recent, a write, and opens again)."""
    # No transaction: on SQLite every transaction takes the write lock (IMMEDIATE mode).
    with raw_cursor() as cursor:
        box, recent_uid = _mailbox_row(cursor, account_id, name)
        flags = None
        if with_flags:
            cursor.execute(
                f"SELECT uid, modseq, flags, keywords FROM {_MESSAGE}"  # noqa: S608
                " WHERE mailbox_id = %s AND uid < %s ORDER BY uid",
                [box.id, box.uidnext],
            )
            rows = cursor.fetchall()
            uids = array("q", [row[0] for row in rows])
            join = flagbits.join
            flags = {uid: (join(bits, kw), modseq) for uid, modseq, bits, kw in rows}
            unseen = (row[0] for row in rows if not row[2] & flagbits.SEEN)
            first_unseen = next(unseen, None) if want_unseen else None
            return OpenedMailbox(box, uids, recent_uid, first_unseen, flags)
        cursor.execute(
            f"SELECT uid FROM {_MESSAGE} WHERE mailbox_id = %s AND uid < %s ORDER BY uid",  # noqa: S608
            [box.id, box.uidnext],
        )
        uids = array("q", [row[0] for row in cursor.fetchall()])
        first_unseen = None
        if want_unseen and uids:
            cursor.execute(
                f"SELECT uid FROM {_MESSAGE} WHERE mailbox_id = %s AND uid < %s"  # noqa: S608
                f" AND (flags & %s) = 0 ORDER BY uid LIMIT 1",
                [box.id, box.uidnext, flagbits.SEEN],
            )
            row = cursor.fetchone()
            first_unseen = row[0] if row else None
    return OpenedMailbox(box, uids, recent_uid, first_unseen)


def _mailbox_row(cursor, account_id: int, name: str) -> tuple[MailboxInfo, int]:
    """What mailboxes.get + info give, and the row's recent_uid, in one plain query."""
    cursor.execute(
        f"SELECT id, account_id, name, uidvalidity, uidnext, highestmodseq, special_use,"  # noqa: S608
        f" subscribed, recent_uid FROM {_MAILBOX} WHERE account_id = %s AND name = %s",
        [account_id, normalize_name(name)],
    )
    row = cursor.fetchone()
    if row is None:
        raise MailboxNotFound(f"Mailbox {name} does not exist")
    info = MailboxInfo(
        id=row[0],
        account_id=row[1],
        name=row[2],
        uidvalidity=row[3],
        uidnext=row[4],
        highestmodseq=row[5],
        special_use=row[6],
        subscribed=bool(row[7]),
    )
    return info, row[8]


def _uid_conditions(uids: Sequence[int]) -> list[tuple[str, list[int]]]:
    """SQL conditions on m.uid covering `uids` (ascending): one range scan when the set is
    dense or large, IN lists otherwise (the caller drops UIDs it did not ask for)."""
    if not uids:
        return []
    lo, hi = uids[0], uids[-1]
    if len(uids) > IN_LIMIT or len(uids) * 2 >= hi - lo + 1:
        return [("m.uid BETWEEN %s AND %s", [lo, hi])]
    out = []
    for i in range(0, len(uids), IN_LIMIT):
        chunk = list(uids[i : i + IN_LIMIT])
        out.append((f"m.uid IN ({', '.join(['%s'] * len(chunk))})", chunk))
    return out


def aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes (stored in UTC); the ORM would make them aware."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class FlagRow:
    uid: int
    modseq: int
    flags: tuple[str, ...]


def flag_rows(account_id: int, mailbox_id: int, uids: Sequence[int]) -> list[FlagRow]:
    """UID, MODSEQ and flags for `uids` (ascending), in UID order."""
    wanted = set(uids) if len(uids) < 100_000 or len(uids) != uids[-1] - uids[0] + 1 else None
    out = []
    join = flagbits.join
    with raw_cursor() as cursor:
        for condition, params in _uid_conditions(uids):
            cursor.execute(
                f"SELECT m.uid, m.modseq, m.flags, m.keywords FROM {_MESSAGE} m"  # noqa: S608
                f" JOIN {_MAILBOX} b ON b.id = m.mailbox_id"
                f" WHERE m.mailbox_id = %s AND b.account_id = %s AND {condition}"
                f" ORDER BY m.uid",
                [mailbox_id, account_id, *params],
            )
            for uid, modseq, bits, kw in cursor.fetchall():
                if wanted is None or uid in wanted:
                    out.append(FlagRow(uid, modseq, join(bits, kw)))
    return out


@dataclass(slots=True)
class FetchRow:
    uid: int
    modseq: int
    flags: tuple[str, ...]
    internaldate: datetime
    size: int
    sha256: str  # names the content: equal digests, equal bytes
    envelope: bytes = b""
    body: bytes = b""
    bodystructure: bytes = b""
    parts: dict | None = None
    raw: bytes | None = None
    header: bytes | None = None  # the header block, raw[:header_end]


#: What fetch_rows can read beyond the message row: the serialised IMAP structures, the
#: header block (from its column, else from the blob) and the whole blob with its parts.
FETCH_COLUMNS = frozenset({"internaldate", "envelope", "body", "bodystructure", "header", "raw"})


def fetch_rows(
    account_id: int,
    mailbox_id: int,
    uids: Sequence[int],
    *,
    want: frozenset[str],
    flags: Mapping[int, tuple[tuple[str, ...], int]] | None = None,
) -> list[FetchRow]:
    """Rows for FETCH, in `uids` order: the message row always, plus what `want`
    (FETCH_COLUMNS) names; only those columns are read, so `FETCH (FLAGS
    BODY.PEEK[HEADER.FIELDS ...])` costs neither the structures nor a file.

    `flags` (uid -> (flags, modseq)), when the caller knows them to be current (the
    session's flags cache), lets messages whose other columns are in `fetchcache` be
    answered without a query; the rest are read and cached."""
    if flags is None:
        return _read_rows(account_id, mailbox_id, uids, want)
    rows: dict[int, FetchRow] = {}
    missing = []
    for uid in uids:
        row = _cached_row(account_id, mailbox_id, uid, want, flags)
        if row is None:
            missing.append(uid)
        else:
            rows[uid] = row
    if not missing:
        return list(rows.values())
    for row in _read_rows(account_id, mailbox_id, missing, want):
        rows[row.uid] = row
    return [rows[uid] for uid in uids if uid in rows]


def _cached_row(
    account_id: int, mailbox_id: int, uid: int, want: frozenset[str], flags: Mapping
) -> FetchRow | None:
    from . import blobs

    known = flags.get(uid)
    entry = fetchcache.get((account_id, mailbox_id, uid))
    if known is None or entry is None:
        return None
    more = {}
    for name in want:
        if name == "header" and "raw" in want:
            continue  # sections are cut from the whole message then
        if name == "raw":
            parts = entry.get("parts")
            if parts is None:
                return None
            try:
                more["raw"] = blobs.read(entry["sha256"])
            except FileNotFoundError:  # expunged and collected: ask the database
                return None
            more["parts"] = parts
        elif name in entry:
            more[name] = entry[name]
        else:
            return None
    return FetchRow(
        uid=uid,
        modseq=known[1],
        flags=known[0],
        internaldate=more.pop("internaldate", None),
        size=entry["size"],
        sha256=entry["sha256"],
        **more,
    )


def _read_rows(
    account_id: int, mailbox_id: int, uids: Sequence[int], want: frozenset[str]
) -> list[FetchRow]:
    from . import blobs

    wanted = set(uids)
    # INTERNALDATE only when asked for: SQLite hands it back as text that Django's
    # converter parses row by row.
    when = "m.internaldate" if "internaldate" in want else "NULL"
    columns = f"m.uid, m.modseq, m.flags, m.keywords, {when}, m.size, c.sha256"
    extra = [name for name in ("envelope", "body", "bodystructure") if name in want]
    raw, header = "raw" in want, "header" in want and "raw" not in want
    for name in extra:
        columns += f", c.{name}"
    if raw:
        columns += ", c.parts"
    elif header:
        columns += ", c.header, c.header_end"
    out = []
    join = flagbits.join
    with raw_cursor() as cursor:
        for condition, params in _uid_conditions(uids):
            cursor.execute(
                f"SELECT {columns} FROM {_MESSAGE} m"  # noqa: S608
                f" JOIN {_MAILBOX} b ON b.id = m.mailbox_id"
                f" JOIN {_CONTENT} c ON c.id = m.content_id"
                f" WHERE m.mailbox_id = %s AND b.account_id = %s AND {condition}"
                f" ORDER BY m.uid",
                [mailbox_id, account_id, *params],
            )
            for row in cursor.fetchall():
                uid = row[0]
                if uid not in wanted:
                    continue
                more = {name: bytes(value) for name, value in zip(extra, row[7:], strict=False)}
                keep = dict(more, sha256=row[6], size=row[5])
                if row[4] is not None:
                    keep["internaldate"] = row[4]
                parts_size = 0
                if raw:
                    more["parts"] = keep["parts"] = json.loads(row[-1])
                    parts_size = len(row[-1])
                    more["raw"] = blobs.read(row[6])
                elif header:
                    block, end = row[-2], row[-1]
                    if block is not None:
                        more["header"] = keep["header"] = bytes(block)
                    else:  # longer than the column keeps: from the file, and not cached
                        more["header"] = blobs.read(row[6], 0, end)
                fetchcache.put((account_id, mailbox_id, uid), keep, parts_size)
                out.append(
                    FetchRow(
                        uid=uid,
                        modseq=row[1],
                        flags=join(row[2], row[3]),
                        internaldate=row[4],  # naive on SQLite: see aware()
                        size=row[5],
                        sha256=row[6],
                        **more,
                    )
                )
    return out


def statuses(account_id: int, mailbox_ids: Sequence[int]) -> dict:
    """MailboxStatus for several mailboxes (LIST-STATUS)."""
    from .mailboxes import status

    owned = set(
        Mailbox.objects.filter(account_id=account_id, id__in=list(mailbox_ids)).values_list(
            "id", flat=True
        )
    )
    return {mid: status(mid) for mid in mailbox_ids if mid in owned}


def mailbox_status(account_id: int, name: str):
    from .mailboxes import status

    return status(get_mailbox(account_id, name).id)
