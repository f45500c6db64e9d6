"""The orphan collector: removes blobs no message refers to any more."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from ..models import Content
from . import blobs, tx


@dataclass(frozen=True)
class Collected:
    rows: int
    files: int


def collect_orphans(grace_seconds: int | None = None) -> Collected:
    """Delete Content rows at refcount 0 and blob files without a row, older than the grace.

    A row is deleted with its file inside one transaction holding the row lock; a delivery
    of the same bytes that races with it waits on that lock and then rewrites the file
    (messages._content_row), so no committed message loses its blob.
    """
    grace = settings.BUZON_ORPHAN_GRACE_SECONDS if grace_seconds is None else grace_seconds
    cutoff = timezone.now() - timedelta(seconds=grace)
    rows = files = 0
    candidates = list(
        Content.objects.filter(refcount__lte=0, orphaned_at__lte=cutoff).values_list(
            "id", flat=True
        )[:10_000]
    )
    for cid in candidates:
        with tx.write():
            content = Content.objects.select_for_update().filter(id=cid, refcount__lte=0).first()
            if content is None:
                continue
            sha = content.sha256
            content.delete()
            blobs.remove(sha)
            rows += 1
    # Files written for a transaction that never committed (crash, error): no row refers to them.
    oldest = time.time() - grace
    batch: list[tuple[str, object]] = []
    for name, path, mtime in blobs.iter_files():
        if mtime > oldest:
            continue
        if name.startswith(".tmp-"):
            path.unlink(missing_ok=True)
            files += 1
            continue
        batch.append((name, path))
        if len(batch) >= 500:
            files += _remove_unreferenced(batch)
            batch = []
    files += _remove_unreferenced(batch)
    return Collected(rows=rows, files=files)


def _remove_unreferenced(batch: list) -> int:
    if not batch:
        return 0
    removed = 0
    with tx.write():
        known = set(
            Content.objects.filter(sha256__in=[n for n, _ in batch]).values_list(
                "sha256", flat=True
            )
        )
        for name, path in batch:
            if name not in known:
                path.unlink(missing_ok=True)
                removed += 1
    return removed
