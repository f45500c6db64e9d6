"""Celery tasks. Each keeps its state in ORM rows; the embedded worker runs them in-process."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="buzon.collect_orphans")
def collect_orphans() -> dict:
    """Remove blobs no message refers to (hourly in runmail; a Celery beat entry at scale)."""
    from .store import collect_orphans as collect

    result = collect()
    return {"rows": result.rows, "files": result.files}
