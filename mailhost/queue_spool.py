"""The outbound queue's message files: BUZON_DATA_DIR/queue/<ab>/<sha256>.

Kept apart from the store's blobs, whose orphan collector removes files no Content row
refers to. A file is written, fsync'ed and renamed into place (its directory fsync'ed)
before the row that refers to it commits, and removed once no queued message needs it.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from .store import blobs


def root() -> Path:
    return Path(settings.BUZON_DATA_DIR) / "queue"


def path(sha256: str) -> Path:
    return root() / sha256[:2] / sha256


def put(raw: bytes) -> str:
    """Write `raw` durably (once per content); return its SHA-256."""
    sha = blobs.digest(raw)
    target = path(sha)
    if not target.exists():
        blobs.write_durably(target, raw)
    return sha


def read(sha256: str) -> bytes:
    return path(sha256).read_bytes()


def remove(sha256: str) -> None:
    path(sha256).unlink(missing_ok=True)
