"""The outbound queue, core side: enqueue, claim, record attempts, DSNs, mailq operations.

Durable state is in rows (mailhost.models.queue) and spool files (queue_spool), so a lost
broker message or a killed worker loses nothing: `sweep()` finds every due recipient again,
including claims whose lease ran out. The SMTP client that makes attempts is
smtpd.outbound; it calls `claim()` and `record()` here.

Rules kept here:
- Retries back off from BUZON_QUEUE_BACKOFF_MIN, doubling up to BUZON_QUEUE_BACKOFF_MAX;
  the last attempt is made at expiry (BUZON_QUEUE_LIFETIME), then the recipient fails.
- A failed recipient is reported to the envelope sender once, in an RFC 3464 DSN; never to
  the null sender (RFC 5321 §4.5.5), so a DSN never causes another DSN.
- Forwarded mail (alias targets outside our domains) keeps its envelope sender: no SRS.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from . import queue_spool
from .mail import address as addr
from .models import QueuedMessage, QueuedRecipient

log = logging.getLogger(__name__)
LEASE_SECONDS = 600

R = QueuedRecipient


@dataclass(frozen=True)
class Claim:
    """Recipients of one message that this worker now owns until the lease ends."""

    message_id: int
    sha256: str
    mail_from: str
    recipients: list[tuple[int, str]]  # (row id, address)


@dataclass(frozen=True)
class Outcome:
    """What the remote side (or DNS) said about one claimed recipient."""

    rcpt_id: int
    code: int
    enhanced: str
    text: str
    remote_mta: str = ""

    @property
    def reply(self) -> str:
        return f"{self.code} {self.enhanced} {self.text}".strip()


@dataclass(frozen=True)
class QueueEntry:
    id: int
    created: datetime
    size: int
    mail_from: str
    kind: str
    held: bool
    recipients: list[dict] = field(default_factory=list)


def _now(now: datetime | None) -> datetime:
    return now or timezone.now()


def enqueue(
    raw: bytes,
    mail_from: str,
    rcpts: Iterable[str],
    *,
    kind: str = "submission",
    account_id: int | None = None,
    now: datetime | None = None,
) -> int:
    """Queue `raw` for `rcpts`; return the message id. Durable when this returns."""
    rcpts = list(dict.fromkeys(rcpts))
    if not rcpts:
        raise ValueError("no recipients")
    now = _now(now)
    sha = queue_spool.put(raw)  # fsync'ed before the commit that refers to it
    with transaction.atomic():
        msg = QueuedMessage.objects.create(
            sha256=sha,
            size=len(raw),
            mail_from=mail_from,
            kind=kind,
            account_id=account_id,
            created=now,
            expires_at=now + timedelta(seconds=settings.BUZON_QUEUE_LIFETIME),
        )
        R.objects.bulk_create([R(message=msg, address=r, next_attempt=now) for r in rcpts])
        transaction.on_commit(lambda: _kick(msg.id))
    log.info("queued %s from <%s> to %s", msg.id, mail_from, ", ".join(rcpts))
    return msg.id


def _kick(message_id: int) -> None:
    from . import jobs, tasks

    jobs.enqueue(tasks.deliver_queued, message_id)


def forward(raw: bytes, mail_from: str, targets: list[str]) -> None:
    """The store's forwarder: alias targets outside our domains leave through the queue."""
    enqueue(raw, mail_from, targets, kind="forward")


def backoff(attempts: int) -> timedelta:
    """Delay before the next try after `attempts` temporary failures (doubling, capped)."""
    base, cap = settings.BUZON_QUEUE_BACKOFF_MIN, settings.BUZON_QUEUE_BACKOFF_MAX
    return timedelta(seconds=min(cap, base * 2 ** max(0, attempts - 1)))


def _due_q(now: datetime) -> Q:
    return Q(state=R.QUEUED, next_attempt__lte=now) | Q(state=R.SENDING, lease_until__lt=now)


def claim(message_id: int, *, now: datetime | None = None, lease: int = LEASE_SECONDS):
    """Take every due recipient of a message that is not held; None when there is none."""
    now = _now(now)
    with transaction.atomic():
        msg = QueuedMessage.objects.filter(id=message_id, held=False).first()
        if msg is None:
            return None
        rows = list(
            R.objects.select_for_update(skip_locked=True)
            .filter(_due_q(now), message_id=message_id)
            .values_list("id", "address")
        )
        if not rows:
            return None
        R.objects.filter(id__in=[r[0] for r in rows]).update(
            state=R.SENDING, lease_until=now + timedelta(seconds=lease)
        )
    return Claim(msg.id, msg.sha256, msg.mail_from, rows)


def record(message_id: int, outcomes: Iterable[Outcome], *, now: datetime | None = None) -> None:
    """Store each recipient's outcome (2xx delivered, 5xx failed, 4xx retry or expire)."""
    now = _now(now)
    with transaction.atomic():
        msg = QueuedMessage.objects.filter(id=message_id).first()
        if msg is None:  # deleted (mailq --delete) while we were sending
            return
        for o in outcomes:
            row = R.objects.filter(id=o.rcpt_id, message_id=message_id).first()
            if row is None:
                continue
            row.attempts += 1
            row.last_attempt, row.lease_until = now, None
            row.last_reply, row.status, row.remote_mta = o.reply[:2000], o.enhanced, o.remote_mta
            if 200 <= o.code < 300:
                row.state = R.DELIVERED
            elif 400 <= o.code < 500 and now < msg.expires_at:
                row.state = R.QUEUED
                row.next_attempt = min(now + backoff(row.attempts), msg.expires_at)
            else:
                row.state = R.FAILED
                if o.code < 500:
                    row.status = "4.4.7"  # RFC 3463: delivery time expired
                    row.last_reply = f"Delivery time expired; last reply: {o.reply}"[:2000]
            row.save()
    settle(message_id, now=now)


def release_claim(message_id: int) -> None:
    """Give back recipients claimed but not attempted (e.g. shutdown mid-run)."""
    R.objects.filter(message_id=message_id, state=R.SENDING).update(
        state=R.QUEUED, lease_until=None
    )


def settle(message_id: int, *, now: datetime | None = None) -> None:
    """Report newly failed recipients to the sender; drop the message once all are final.

    The DSN is made durable (delivered or queued) before the rows say "reported": a crash in
    between sends it twice rather than never.
    """
    now = _now(now)
    msg = QueuedMessage.objects.filter(id=message_id).first()
    if msg is None:
        return
    failed = list(R.objects.filter(message=msg, state=R.FAILED, reported=False))
    if failed and msg.mail_from:
        _report(msg, failed, action="failed", now=now)
    with transaction.atomic():
        if failed:
            R.objects.filter(id__in=[r.id for r in failed]).update(reported=True)
        pending = R.objects.filter(message=msg, state__in=[R.QUEUED, R.SENDING]).exists()
        if not pending:
            _delete(msg)


def _delete(msg: QueuedMessage) -> None:
    sha = msg.sha256
    msg.delete()
    if not QueuedMessage.objects.filter(sha256=sha).exists():
        transaction.on_commit(lambda: queue_spool.remove(sha))


def _report(msg: QueuedMessage, rows: list, *, action: str, now: datetime) -> None:
    from . import queue_dsn

    try:
        original = queue_spool.read(msg.sha256)
    except FileNotFoundError:
        original = b""
    raw = queue_dsn.build(
        sender=msg.mail_from,
        arrival=msg.created,
        original=original,
        recipients=[
            queue_dsn.RecipientStatus(
                address=r.address,
                action=action,
                status=r.status or ("4.0.0" if action == "delayed" else "5.0.0"),
                diagnostic=r.last_reply,
                remote_mta=r.remote_mta,
                last_attempt=r.last_attempt,
                retry_until=msg.expires_at if action == "delayed" else None,
            )
            for r in rows
        ],
        now=now,
    )
    send_notice(raw, msg.mail_from)


def send_notice(raw: bytes, to: str) -> None:
    """Send a message from the null sender (DSN, vacation): locally if `to` is ours, else queued.

    Signed with DKIM when the From: domain has a key.
    """
    from . import outbound_dkim
    from .store import deliver
    from .store.delivery import is_local_domain

    raw = outbound_dkim.sign(raw)
    if is_local_domain(addr.split(to)[1]):
        results = deliver(raw, mail_from="", rcpt_to=[to])
        for r in results:
            if not r.ok:
                log.warning("notice to %s not delivered: %s", to, r.reply)
        return
    enqueue(raw, "", [to], kind="dsn")


def due_message_ids(*, now: datetime | None = None, limit: int = 1000) -> list[int]:
    now = _now(now)
    return list(
        R.objects.filter(_due_q(now), message__held=False)
        .values_list("message_id", flat=True)
        .distinct()
        .order_by("message_id")[:limit]
    )


def sweep(*, now: datetime | None = None) -> list[int]:
    """Send delay warnings that are due and return the ids of messages with due recipients."""
    now = _now(now)
    warn_after = settings.BUZON_QUEUE_DELAY_WARNING
    if warn_after > 0:
        cutoff = now - timedelta(seconds=warn_after)
        late = QueuedMessage.objects.filter(
            warned=False, held=False, created__lte=cutoff, recipients__state=R.QUEUED
        ).exclude(mail_from="")
        for msg in late.distinct()[:200]:
            if not QueuedMessage.objects.filter(id=msg.id, warned=False).update(warned=True):
                continue  # another sweeper got it
            rows = list(R.objects.filter(message=msg, state=R.QUEUED, attempts__gt=0))
            if rows:
                _report(msg, rows, action="delayed", now=now)
    # Failures recorded by a worker that died before reporting them.
    unsettled = R.objects.filter(state=R.FAILED, reported=False).values_list("message_id")
    for message_id in set(unsettled.distinct()[:200]):
        settle(message_id[0], now=now)
    return due_message_ids(now=now)


# mailq -------------------------------------------------------------------------------


def entries() -> list[QueueEntry]:
    out = []
    for msg in QueuedMessage.objects.prefetch_related("recipients"):
        out.append(
            QueueEntry(
                id=msg.id,
                created=msg.created,
                size=msg.size,
                mail_from=msg.mail_from,
                kind=msg.kind,
                held=msg.held,
                recipients=[
                    {
                        "address": r.address,
                        "state": r.state,
                        "attempts": r.attempts,
                        "next_attempt": r.next_attempt,
                        "last_reply": r.last_reply,
                    }
                    for r in msg.recipients.all()
                    if r.state in (R.QUEUED, R.SENDING)
                ],
            )
        )
    return out


def flush(*, now: datetime | None = None) -> list[int]:
    """Make every waiting recipient due now; return the ids of messages to attempt."""
    now = _now(now)
    R.objects.filter(state=R.QUEUED, next_attempt__gt=now).update(next_attempt=now)
    return due_message_ids(now=now)


def delete(message_id: int) -> bool:
    """Drop a message without any DSN (the administrator's decision)."""
    with transaction.atomic():
        msg = QueuedMessage.objects.filter(id=message_id).first()
        if msg is None:
            return False
        _delete(msg)
    return True


def hold(message_id: int) -> bool:
    return bool(QueuedMessage.objects.filter(id=message_id).update(held=True))


def release(message_id: int) -> bool:
    return bool(QueuedMessage.objects.filter(id=message_id).update(held=False))
