"""Fast reads for the IMAP server: the selected-mailbox view and FETCH rows.

Read-only helpers over the store's tables, shaped for what IMAP asks most often on big
mailboxes (`SELECT`, `UID FETCH 1:* (FLAGS)`). Writes stay in `messages.py`.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ..models import Mailbox, Message
from . import flags as flagbits
from .mailboxes import get as get_mailbox
from .mailboxes import info as mailbox_info
from .messages import claim_recent
from .values import MailboxInfo

IN_LIMIT = 900  # SQLite's parameter limit is 999 on old builds


@dataclass(frozen=True)
class OpenedMailbox:
    """What SELECT/EXAMINE needs, read so that later changes all have a higher MODSEQ."""

    info: MailboxInfo
    uids: array  # ascending, array('q')
    first_recent_uid: int  # UIDs at or above it are \Recent for this session
    first_unseen_uid: int | None


def open_mailbox(account_id: int, name: str, *, claim: bool, want_unseen: bool) -> OpenedMailbox:
    """Read the mailbox row first, then its UIDs below that UIDNEXT: a message added in
    between has a higher MODSEQ and UID, so the session's next changes_since() reports it."""
    # No transaction: on SQLite every transaction takes the write lock (IMMEDIATE mode).
    box = get_mailbox(account_id, name)
    first_recent = box.recent_uid
    if claim and box.recent_uid < box.uidnext:  # a write only when there is something to claim
        first_recent = claim_recent(account_id, box.id)
        box = get_mailbox(account_id, name)
    uids = array(
        "q",
        Message.objects.filter(mailbox_id=box.id, uid__lt=box.uidnext)
        .order_by("uid")
        .values_list("uid", flat=True),
    )
    first_unseen = None
    if want_unseen and uids:
        first_unseen = (
            Message.objects.filter(mailbox_id=box.id, uid__lt=box.uidnext)
            .annotate(seen=_bit(flagbits.SEEN))
            .filter(seen=0)
            .order_by("uid")
            .values_list("uid", flat=True)
            .first()
        )
    return OpenedMailbox(mailbox_info(box), uids, first_recent, first_unseen)


def _bit(bit: int):
    from django.db.models import F

    return F("flags").bitand(bit)


def _uid_filter(qs, uids: Sequence[int]):
    """Filter by UIDs: one range scan when the set is dense or large, IN lists otherwise."""
    if not uids:
        return [qs.none()]
    lo, hi = uids[0], uids[-1]
    if len(uids) > IN_LIMIT or len(uids) * 2 >= hi - lo + 1:
        return [qs.filter(uid__gte=lo, uid__lte=hi)]
    return [qs.filter(uid__in=list(uids[i : i + IN_LIMIT])) for i in range(0, len(uids), IN_LIMIT)]


@dataclass(frozen=True)
class FlagRow:
    uid: int
    modseq: int
    flags: tuple[str, ...]


def flag_rows(account_id: int, mailbox_id: int, uids: Sequence[int]) -> list[FlagRow]:
    """UID, MODSEQ and flags for `uids` (ascending), in UID order."""
    wanted = set(uids) if len(uids) < 100_000 or len(uids) != uids[-1] - uids[0] + 1 else None
    out = []
    owned = Message.objects.filter(mailbox_id=mailbox_id, mailbox__account_id=account_id)
    for qs in _uid_filter(owned, uids):
        for uid, modseq, bits, kw in qs.order_by("uid").values_list(
            "uid", "modseq", "flags", "keywords"
        ):
            if wanted is None or uid in wanted:
                out.append(FlagRow(uid, modseq, flagbits.join(bits, kw)))
    return out


@dataclass(frozen=True)
class FetchRow:
    uid: int
    modseq: int
    flags: tuple[str, ...]
    internaldate: datetime
    size: int
    envelope: bytes
    body: bytes
    bodystructure: bytes
    parts: dict | None
    raw: bytes | None


def fetch_rows(
    account_id: int, mailbox_id: int, uids: Sequence[int], *, structure: bool, raw: bool
) -> list[FetchRow]:
    """Rows for FETCH: metadata always; parts JSON when `structure`; blob bytes when `raw`."""
    from . import blobs

    wanted = set(uids)
    fields = ["uid", "modseq", "flags", "keywords", "internaldate", "size", "content__sha256"]
    fields += ["content__envelope", "content__body", "content__bodystructure"]
    if structure or raw:
        fields.append("content__parts")
    out = []
    owned = Message.objects.filter(mailbox_id=mailbox_id, mailbox__account_id=account_id)
    for qs in _uid_filter(owned, uids):
        for row in qs.order_by("uid").values(*fields):
            if row["uid"] not in wanted:
                continue
            parts = json.loads(row["content__parts"]) if "content__parts" in row else None
            out.append(
                FetchRow(
                    uid=row["uid"],
                    modseq=row["modseq"],
                    flags=flagbits.join(row["flags"], row["keywords"]),
                    internaldate=row["internaldate"],
                    size=row["size"],
                    envelope=bytes(row["content__envelope"]),
                    body=bytes(row["content__body"]),
                    bodystructure=bytes(row["content__bodystructure"]),
                    parts=parts,
                    raw=blobs.read(row["content__sha256"]) if raw else None,
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
