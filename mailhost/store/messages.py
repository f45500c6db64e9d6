"""Message operations: the only code that writes Message rows, UIDs, MODSEQs and blobs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from ..mail.parse import ParsedMessage, parse_message
from ..models import Account, Content, Mailbox, Message
from ..models.messages import HEADER_COLUMN_MAX
from . import blobs, fetchcache, sql, tx
from . import flags as flagbits
from .errors import AccountNotFound, MailboxNotFound, MessageTooLarge, OverQuota
from .events import MailboxEvent, publish_on_commit
from .mailboxes import get as get_mailbox
from .mailboxes import info as mailbox_info
from .names import normalize as normalize_name
from .values import Appended, Changes, CopyResult, FlagsResult, MessageFlags, MessageMeta

MAX_FLAG_LENGTH = 200


@dataclass(frozen=True)
class Prepared:
    """A message parsed and written to disk, ready to be made visible by a transaction."""

    raw: bytes
    sha256: str
    parsed: ParsedMessage


def prepare(raw: bytes) -> Prepared:
    """Parse once and write the blob durably (outside any transaction: fsync holds no lock)."""
    if len(raw) > settings.BUZON_MAX_MESSAGE_SIZE:
        raise MessageTooLarge(
            f"Message is {len(raw)} bytes; the limit is {settings.BUZON_MAX_MESSAGE_SIZE}"
        )
    sha = blobs.digest(raw)
    parsed = parse_message(raw)
    blobs.put(raw, sha)
    return Prepared(raw=raw, sha256=sha, parsed=parsed)


def crlf_size(raw: bytes) -> int:
    """Octets of `raw` once every bare LF is sent as CRLF (a bare CR is sent as it is)."""
    return len(raw) + raw.count(b"\n") - raw.count(b"\r\n")


def _content_fields(prep: Prepared) -> dict:
    p = prep.parsed
    return {
        "sha256": prep.sha256,
        "size": p.size,
        "crlf_size": crlf_size(prep.raw),
        "header_end": p.header_end,
        "header": prep.raw[: p.header_end] if p.header_end <= HEADER_COLUMN_MAX else None,
        "envelope": p.envelope,
        "body": p.body,
        "bodystructure": p.bodystructure,
        "parts": json.dumps(p.parts, separators=(",", ":")),
        "subject": p.subject,
        "base_subject": p.base_subject,
        "from_display": p.from_display,
        "from_addr": p.from_addr,
        "to": p.to,
        "cc": p.cc,
        "bcc": p.bcc,
        "date": p.date,
        "message_id": p.message_id,
        "in_reply_to": p.in_reply_to,
        "references": " ".join(p.references),
        "has_attachments": p.has_attachments,
        "preview": p.preview,
    }


def _content_row(prep: Prepared, refs: int) -> int:
    """Take `refs` references to the Content row for `prep`, creating it if needed.

    One statement on the hot path: INSERT ... ON CONFLICT (sha256) DO UPDATE ... RETURNING,
    which SQLite (3.35+) and PostgreSQL both run, and which takes the row lock that the
    orphan collector also takes (gc.collect_orphans).
    """
    content_id = sql.upsert_content(_content_fields(prep), refs)
    # The orphan collector may have removed the file between prepare() and this statement.
    if not blobs.exists(prep.sha256):
        blobs.put(prep.raw, prep.sha256)
    return content_id


def release_contents(content_ids: Iterable[int]) -> None:
    """Drop one reference per id; a Content at zero waits for the orphan collector."""
    counts: dict[int, int] = {}
    for cid in content_ids:
        counts[cid] = counts.get(cid, 0) + 1
    if counts:
        sql.release_contents(counts, timezone.now())


def _gone() -> MailboxNotFound:
    return MailboxNotFound("Mailbox does not exist any more")


def _owned_box(account_id: int, mailbox_id: int, lock: bool = True) -> Mailbox:
    row = sql.owned_mailbox(account_id, mailbox_id, lock=lock)
    if row is None:
        raise _gone()
    return Mailbox.from_db(connection.alias, sql.MAILBOX_COLUMNS, row)  # `created` deferred


def _allocate(box: Mailbox, count: int) -> tuple[int, int]:
    """Reserve `count` UIDs and one new MODSEQ in a locked mailbox (RFC 3501 §2.3.1.1)."""
    box.uidnext, box.highestmodseq = sql.allocate_uids(box.id, count)
    return box.uidnext - count, box.highestmodseq


def _bump_modseq(box: Mailbox) -> int:
    box.highestmodseq = sql.bump_modseq(box.id)
    return box.highestmodseq


def check_quota(account_id: int, extra: int, *, permanent: bool | None = None) -> None:
    """Raise OverQuota when `extra` bytes would take the account past its quota (RFC 9208)."""
    row = Account.objects.filter(id=account_id).values("quota_bytes", "used_bytes").first()
    if row is None:
        raise AccountNotFound(f"No account {account_id}")
    if row["quota_bytes"] and row["used_bytes"] + extra > row["quota_bytes"]:
        if permanent is None:
            permanent = settings.BUZON_QUOTA_PERMANENT
        raise OverQuota("Mailbox is over its storage quota", permanent=permanent)


def _add_usage(account_id: int, amount: int) -> None:
    if amount:
        Account.objects.filter(id=account_id).update(used_bytes=F("used_bytes") + amount)


def _reserve(account_id: int, amount: int, *, permanent: bool | None) -> None:
    """Add `amount` to the account's usage unless that passes its quota (one UPDATE)."""
    if not sql.reserve_usage(account_id, amount):
        check_quota(account_id, amount, permanent=permanent)  # raises the right error
        raise OverQuota("Mailbox is over its storage quota", permanent=bool(permanent))


def _sub_usage(account_id: int, amount: int) -> None:
    if amount:
        sql.sub_usage(account_id, amount)


def clean_flags(names: Iterable[str]) -> tuple[int, str]:
    bits, keywords = flagbits.split(n for n in names if len(n) <= MAX_FLAG_LENGTH)
    return bits, flagbits.encode_keywords(list(keywords)[: flagbits.MAX_KEYWORDS])


def insert_prepared(
    box: Mailbox,
    prep: Prepared,
    *,
    flags: Iterable[str] = (),
    internaldate: datetime | None = None,
    quota_permanent: bool | None = True,
) -> Message:
    """Insert one prepared message into a mailbox locked by the caller's transaction.

    Raises OverQuota (permanent, or per BUZON_QUOTA_PERMANENT when `quota_permanent` is None)
    before writing anything.
    """
    _reserve(box.account_id, len(prep.raw), permanent=quota_permanent)
    content_id = _content_row(prep, 1)
    uid, modseq = _allocate(box, 1)
    bits, keywords = clean_flags(flags)
    msg = Message.objects.create(
        mailbox=box,
        uid=uid,
        modseq=modseq,
        flags=bits,
        keywords=keywords,
        internaldate=internaldate or timezone.now(),
        size=len(prep.raw),
        content_id=content_id,
    )
    publish_on_commit(MailboxEvent(box.account_id, box.id, "added", [uid], modseq))
    return msg


def deliver_prepared(account_id: int, folder: str, prep: Prepared) -> tuple[int, int]:
    """Deliver into `folder` (INBOX when it does not exist): the MDA's hot path.

    Returns (mailbox id, uid). Quota follows BUZON_QUOTA_PERMANENT. Runs inside the caller's
    write transaction, in four statements: quota, UID, content, message.
    """
    # UID first: when the quota check then fails, nothing but an unused UID is left behind
    # (UIDs need only ascend, RFC 3501 §2.3.1.1), and the caller's other accounts go on.
    alloc = sql.allocate_uid(account_id, folder)
    if alloc is None and folder != "INBOX":
        alloc = sql.allocate_uid(account_id, "INBOX")
    if alloc is None:
        raise MailboxNotFound("The account has no INBOX")
    _reserve(account_id, len(prep.raw), permanent=None)
    mailbox_id, _uidvalidity, uid, modseq, _ = alloc
    content_id = _content_row(prep, 1)
    sql.insert_message(mailbox_id, uid, modseq, 0, "", timezone.now(), len(prep.raw), content_id)
    publish_on_commit(MailboxEvent(account_id, mailbox_id, "added", [uid], modseq))
    return mailbox_id, uid


def append(
    account_id: int,
    mailbox: str,
    raw: bytes,
    *,
    flags: Iterable[str] = (),
    internaldate: datetime | None = None,
    if_absent: bool = False,
) -> Appended | None:
    """Store `raw` byte-exact in `mailbox`; return its UID (RFC 9051 §6.3.12, RFC 4315).

    With `if_absent`, return None instead when the mailbox already holds these exact bytes
    (a re-run import adds no duplicates).
    """
    prep = prepare(raw)
    return append_prepared(
        account_id, mailbox, prep, flags=flags, internaldate=internaldate, if_absent=if_absent
    )


def append_prepared(
    account_id: int,
    mailbox: str,
    prep: Prepared,
    *,
    flags: Iterable[str] = (),
    internaldate: datetime | None = None,
    if_absent: bool = False,
    claim_recent: bool = False,
) -> Appended | None:
    r"""`append` of a message `prepare`d beforehand: the transaction alone, so a batching
    writer (mailhost.dbpool.run_db_write) does not parse or fsync under the write lock.

    `claim_recent`: the caller has the mailbox selected (IMAP4rev1), so it is the first to
    learn of the message; \Recent is claimed for it in the same statement when no earlier
    message waits to be claimed (Appended.recent), saving the session a claim_recent."""
    if if_absent:
        with tx.write():
            box = get_mailbox(account_id, mailbox, lock=True)
            if Message.objects.filter(mailbox=box, content__sha256=prep.sha256).exists():
                return None
            msg = insert_prepared(box, prep, flags=flags, internaldate=internaldate)
        return Appended(box.id, box.uidvalidity, msg.uid, msg.modseq)
    # What insert_prepared does, in plain statements: the UID first (it locks the mailbox
    # row; a failed quota check then rolls it back with the rest), quota, content, message.
    with tx.write():
        alloc = sql.allocate_uid(account_id, normalize_name(mailbox), claim_recent=claim_recent)
        if alloc is None:
            raise MailboxNotFound(f"Mailbox {mailbox} does not exist")
        mailbox_id, uidvalidity, uid, modseq, recent = alloc
        _reserve(account_id, len(prep.raw), permanent=True)
        content_id = _content_row(prep, 1)
        bits, keywords = clean_flags(flags)
        when = internaldate or timezone.now()
        sql.insert_message(mailbox_id, uid, modseq, bits, keywords, when, len(prep.raw), content_id)
        publish_on_commit(MailboxEvent(account_id, mailbox_id, "added", [uid], modseq))
        _remember_on_commit(account_id, mailbox_id, uid, prep, when)
    return Appended(mailbox_id, uidvalidity, uid, modseq, flagbits.join(bits, keywords), recent)


def _remember_on_commit(
    account_id: int, mailbox_id: int, uid: int, prep: Prepared, when: datetime
) -> None:
    """Once committed (a rolled-back UID is handed out again), put what FETCH reads of the
    new message into fetchcache: a client that APPENDs and then lists the folder (a sent
    message, a saved draft) needs no query for it. The MIME map is left to the first
    BODY[] (the database hands it back in its own JSON form)."""
    p = prep.parsed
    values = {
        "sha256": prep.sha256,
        "size": len(prep.raw),
        "internaldate": when.astimezone(UTC),  # as the database hands it back
        "envelope": p.envelope,
        "body": p.body,
        "bodystructure": p.bodystructure,
    }
    if p.header_end <= HEADER_COLUMN_MAX:
        values["header"] = prep.raw[: p.header_end]
    transaction.on_commit(lambda: fetchcache.put((account_id, mailbox_id, uid), values))


@dataclass(frozen=True)
class AppendItem:
    raw: bytes
    flags: tuple[str, ...] = ()
    internaldate: datetime | None = None


def append_many(
    account_id: int, mailbox: str, items: Sequence[AppendItem], *, if_absent: bool = False
) -> list[Appended | None]:
    """Append several messages in one transaction (import): same rules as `append`.

    The batch is written in a handful of statements whatever its size: one quota
    reservation, one UID range, one content upsert per 200 distinct blobs, one bulk insert,
    and one event.
    """
    preps = [prepare(item.raw) for item in items]
    results: list[Appended | None] = [None] * len(items)
    with tx.write():
        box = get_mailbox(account_id, mailbox, lock=True)
        present: set[str] = set()
        if if_absent:
            shas = list({p.sha256 for p in preps})
            for k in range(0, len(shas), 500):
                present.update(
                    Message.objects.filter(
                        mailbox=box, content__sha256__in=shas[k : k + 500]
                    ).values_list("content__sha256", flat=True)
                )
        todo: list[int] = []
        for n, prep in enumerate(preps):
            if prep.sha256 in present:
                continue
            if if_absent:
                present.add(prep.sha256)
            todo.append(n)
        if not todo:
            return results
        _reserve(account_id, sum(len(preps[n].raw) for n in todo), permanent=True)
        refs: dict[str, int] = {}
        first: dict[str, Prepared] = {}
        for n in todo:
            refs[preps[n].sha256] = refs.get(preps[n].sha256, 0) + 1
            first.setdefault(preps[n].sha256, preps[n])
        ids = sql.upsert_contents(
            [(_content_fields(prep), refs[sha]) for sha, prep in first.items()]
        )
        for sha, prep in first.items():
            if not blobs.exists(sha):  # collected between prepare() and the upsert
                blobs.put(prep.raw, sha)
        uid, modseq = _allocate(box, len(todo))
        now = timezone.now()
        rows = []
        for offset, n in enumerate(todo):
            bits, keywords = clean_flags(items[n].flags)
            rows.append(
                Message(
                    mailbox=box,
                    uid=uid + offset,
                    modseq=modseq,
                    flags=bits,
                    keywords=keywords,
                    internaldate=items[n].internaldate or now,
                    size=len(preps[n].raw),
                    content_id=ids[preps[n].sha256],
                )
            )
            results[n] = Appended(box.id, box.uidvalidity, uid + offset, modseq)
        Message.objects.bulk_create(rows, batch_size=500)
        publish_on_commit(MailboxEvent(account_id, box.id, "added", [r.uid for r in rows], modseq))
    return results


def _selected(box: Mailbox, uids: Iterable[int] | None):
    qs = Message.objects.filter(mailbox=box)
    if uids is not None:
        qs = qs.filter(uid__in=list(uids))
    return qs.order_by("uid")


def copy(account_id: int, mailbox_id: int, uids: Iterable[int], dest: str) -> CopyResult:
    """COPY (RFC 3501 §6.4.7) with COPYUID (RFC 4315): same bytes, new UIDs, flags kept."""
    uids = sorted(set(uids))
    with tx.write():
        src = _owned_box(account_id, mailbox_id, lock=False)
        target = get_mailbox(account_id, dest, lock=True)
        rows = list(
            _selected(src, uids).values(
                "uid", "flags", "keywords", "internaldate", "size", "content_id"
            )
        )
        if not rows:
            return CopyResult(target.uidvalidity, [], [])
        check_quota(account_id, sum(r["size"] for r in rows), permanent=True)
        first, modseq = _allocate(target, len(rows))
        new = [
            Message(
                mailbox=target,
                uid=first + i,
                modseq=modseq,
                flags=r["flags"],
                keywords=r["keywords"],
                internaldate=r["internaldate"],
                size=r["size"],
                content_id=r["content_id"],
            )
            for i, r in enumerate(rows)
        ]
        Message.objects.bulk_create(new, batch_size=500)
        counts: dict[int, int] = {}
        for r in rows:
            counts[r["content_id"]] = counts.get(r["content_id"], 0) + 1
        for cid, n in counts.items():
            Content.objects.filter(id=cid).update(refcount=F("refcount") + n, orphaned_at=None)
        _add_usage(account_id, sum(r["size"] for r in rows))
        dest_uids = [m.uid for m in new]
        publish_on_commit(MailboxEvent(account_id, target.id, "added", dest_uids, modseq))
    return CopyResult(target.uidvalidity, [r["uid"] for r in rows], dest_uids)


def move(account_id: int, mailbox_id: int, uids: Iterable[int], dest: str) -> CopyResult:
    """MOVE (RFC 6851): copy, then expunge the originals, atomically."""
    with tx.write():
        result = copy(account_id, mailbox_id, uids, dest)
        if result.source_uids:
            expunge(account_id, mailbox_id, result.source_uids, only_deleted=False)
    return result


def move_all(src: Mailbox, target: Mailbox) -> None:
    """Re-home every message of `src` into the new, empty `target` (RENAME INBOX)."""
    uids = list(Message.objects.filter(mailbox=src).values_list("uid", flat=True).order_by("uid"))
    if not uids:
        return
    first, modseq = _allocate(target, len(uids))
    for i, uid in enumerate(uids):
        Message.objects.filter(mailbox=src, uid=uid).update(
            mailbox=target, uid=first + i, modseq=modseq
        )
    _record_expunged(src, uids)
    publish_on_commit(MailboxEvent(src.account_id, src.id, "expunged", uids, src.highestmodseq))


def _record_expunged(box: Mailbox, uids: list[int]) -> int:
    box.highestmodseq = sql.record_expunged(box.id, uids)
    return box.highestmodseq


def expunge(
    account_id: int,
    mailbox_id: int,
    uids: Iterable[int] | None = None,
    *,
    only_deleted: bool = True,
) -> list[int]:
    """Remove messages; return the expunged UIDs in ascending order.

    `only_deleted` (IMAP EXPUNGE, UID EXPUNGE of RFC 4315) removes just those with \\Deleted;
    POP3 QUIT and MOVE pass False.
    """
    wanted = None if uids is None else sorted(set(uids))
    with tx.write():
        locked = sql.lock_owned_mailbox(account_id, mailbox_id)
        if locked is None:
            raise _gone()
        if wanted == []:
            return []
        deleted_bit = flagbits.DELETED if only_deleted else None
        modseq = locked[0] + 1  # the row is locked: ours to take
        expunged = sql.expunge_in_one(
            account_id, mailbox_id, wanted, deleted_bit, modseq, timezone.now()
        )
        if expunged is None:  # SQLite, or UIDs in several lists: step by step
            rows = sql.delete_messages(mailbox_id, wanted, deleted_bit)  # (uid, content, size)
            expunged = [r[0] for r in rows]
            if rows:
                release_contents(r[1] for r in rows)
                _sub_usage(account_id, sum(r[2] for r in rows))
                modseq = sql.record_expunged(mailbox_id, expunged)
        if expunged:
            publish_on_commit(MailboxEvent(account_id, mailbox_id, "expunged", expunged, modseq))
    return expunged


def set_flags(
    account_id: int,
    mailbox_id: int,
    uids: Iterable[int],
    flags: Iterable[str],
    mode: str = "add",
    *,
    unchanged_since: int | None = None,
) -> FlagsResult:
    """STORE (RFC 3501 §6.4.6): mode is `add`, `remove` or `replace`.

    Only messages whose flags really change get a new MODSEQ. With `unchanged_since`
    (CONDSTORE, RFC 7162 §3.1.3) messages modified after it are left alone and reported.
    """
    if mode not in {"add", "remove", "replace"}:
        raise ValueError(mode)
    bits, keywords_text = clean_flags(flags)
    keywords = flagbits.decode_keywords(keywords_text)
    wanted = sorted(set(uids))
    with tx.write():
        locked = sql.lock_with_flag_rows(account_id, mailbox_id, wanted)
        if locked is None:
            raise _gone()
        highestmodseq, rows = locked
        modified, updates = [], []
        for row_id, uid, modseq, old_bits, old_kw_text in rows:
            if unchanged_since is not None and modseq > unchanged_since:
                modified.append(uid)
                continue
            old_kw = flagbits.decode_keywords(old_kw_text)
            if mode == "add":
                new_bits, new_kw = old_bits | bits, old_kw | keywords
            elif mode == "remove":
                new_bits, new_kw = old_bits & ~bits, old_kw - keywords
            else:
                new_bits, new_kw = bits, keywords
            if new_bits != old_bits or new_kw != old_kw:
                if len(new_kw) > flagbits.MAX_KEYWORDS:
                    new_kw = frozenset(sorted(new_kw)[: flagbits.MAX_KEYWORDS])
                updates.append((row_id, uid, new_bits, new_kw))
        changed: list[MessageFlags] = []
        if updates:
            modseq = highestmodseq = highestmodseq + 1  # the row is locked: ours to take
            by_value: dict[tuple[int, str], list[int]] = {}
            names: dict[tuple[int, str], tuple[str, ...]] = {}
            for row_id, uid, new_bits, new_kw in updates:
                key = (new_bits, flagbits.encode_keywords(new_kw))
                ids = by_value.get(key)
                if ids is None:
                    ids = by_value[key] = []
                    names[key] = flagbits.join(new_bits, new_kw)
                ids.append(row_id)
                changed.append(MessageFlags(uid, modseq, names[key]))
            sql.set_flags_at(mailbox_id, modseq, by_value)
            publish_on_commit(
                MailboxEvent(account_id, mailbox_id, "flags", [c.uid for c in changed], modseq)
            )
    return FlagsResult(changed=changed, modified=modified, highestmodseq=highestmodseq)


def claim_recent(account_id: int, mailbox_id: int) -> int:
    """Return the first UID that is \\Recent for the calling session, and claim them all.

    RFC 3501 §2.3.2: a message is \\Recent in only one session. IMAP4rev2 drops \\Recent.
    """
    with tx.write():
        locked = sql.lock_owned_mailbox(account_id, mailbox_id)
        if locked is None:
            raise _gone()
        _, uidnext, first = locked
        if uidnext != first:
            sql.set_recent_uid(mailbox_id, uidnext)
    return first


# Reads ---------------------------------------------------------------------------------


def message_uids(account_id: int, mailbox_id: int) -> list[int]:
    """Every UID in the mailbox, ascending: the session's sequence-number map."""
    _owned_box(account_id, mailbox_id, lock=False)
    return list(
        Message.objects.filter(mailbox_id=mailbox_id).order_by("uid").values_list("uid", flat=True)
    )


def select(account_id: int, mailbox: str) -> tuple[list[int], object]:
    """Return (UIDs ascending, MailboxStatus) for SELECT/EXAMINE in one read."""
    from .mailboxes import status

    with transaction.atomic():
        box = get_mailbox(account_id, mailbox)
        uids = list(
            Message.objects.filter(mailbox_id=box.id).order_by("uid").values_list("uid", flat=True)
        )
        return uids, status(box.id)


def flags_of(
    account_id: int, mailbox_id: int, uids: Iterable[int] | None = None
) -> list[MessageFlags]:
    box = _owned_box(account_id, mailbox_id, lock=False)
    return [
        MessageFlags(uid, modseq, flagbits.join(bits, kw))
        for uid, modseq, bits, kw in _selected(box, uids).values_list(
            "uid", "modseq", "flags", "keywords"
        )
    ]


def fetch_meta(account_id: int, mailbox_id: int, uids: Iterable[int]) -> list[MessageMeta]:
    """What FETCH needs for these UIDs, in UID order, without opening any blob."""
    box = _owned_box(account_id, mailbox_id, lock=False)
    out = []
    uids = list(uids)
    for i in range(0, len(uids), 900):
        for m in _selected(box, uids[i : i + 900]).select_related("content"):
            c = m.content
            out.append(
                MessageMeta(
                    uid=m.uid,
                    modseq=m.modseq,
                    flags=flagbits.join(m.flags, m.keywords),
                    internaldate=m.internaldate,
                    size=m.size,
                    sha256=c.sha256,
                    header_end=c.header_end,
                    envelope=bytes(c.envelope),
                    body=bytes(c.body),
                    bodystructure=bytes(c.bodystructure),
                    parts=c.parts,
                    crlf_size=c.crlf_size,
                )
            )
    return out


def changes_since(account_id: int, mailbox_id: int, modseq: int) -> Changes:
    """Flag changes and expunges after `modseq` (RFC 7162 §3.1.4, VANISHED §3.2.10)."""
    found = sql.changes_since(account_id, mailbox_id, modseq)
    if found is None:
        raise _gone()
    (highestmodseq, uidnext), rows, expunged = found
    join = flagbits.join
    changed = [MessageFlags(uid, ms, join(bits, kw)) for uid, ms, bits, kw in rows]
    return Changes(highestmodseq, uidnext, changed, expunged)


def message_sha(account_id: int, mailbox_id: int, uid: int) -> str:
    row = (
        Message.objects.filter(mailbox_id=mailbox_id, mailbox__account_id=account_id, uid=uid)
        .values_list("content__sha256", flat=True)
        .first()
    )
    if row is None:
        raise MailboxNotFound(f"No message with UID {uid}")
    return row


def read_message(account_id: int, mailbox_id: int, uid: int) -> bytes:
    """The message's bytes exactly as they arrived."""
    return blobs.read(message_sha(account_id, mailbox_id, uid))


def mailbox_of(account_id: int, mailbox_id: int):
    return mailbox_info(_owned_box(account_id, mailbox_id, lock=False))
