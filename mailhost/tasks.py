"""Celery tasks. Each keeps its state in ORM rows; the embedded worker runs them in-process."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="buzon.collect_orphans")
def collect_orphans() -> dict:
    """Remove blobs no message refers to (hourly in runmail; a Celery beat entry at scale)."""
    from .store import collect_orphans as collect

    result = collect()
    return {"rows": result.rows, "files": result.files}


@shared_task(name="buzon.deliver_queued")
def deliver_queued(message_id: int) -> int:
    """One delivery attempt for a queued message's due recipients (smtpd.outbound)."""
    from smtpd.outbound import deliver_message

    return len(deliver_message(message_id))


@shared_task(name="buzon.sweep_queue")
def sweep_queue() -> int:
    """Every minute: delay warnings, unsettled failures, and an attempt for each due message.

    The rows are the queue; this sweep is why a lost broker message (or a killed worker)
    loses no mail. With a broker each attempt is its own task; in-process they run here.
    """
    from django.conf import settings

    from . import jobs, queue

    due = queue.sweep()
    for message_id in due:
        if settings.CELERY_BROKER_URL:
            jobs.enqueue(deliver_queued, message_id)
        else:
            deliver_queued(message_id)
    return len(due)
