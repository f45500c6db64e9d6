"""The outbound queue's message files: BUZON_DATA_DIR/queue/<ab>/<sha256>.

Kept apart from the store's blobs, whose orphan collector removes files no Content row
refers to. A file is written, fsync'ed and renamed into place (its directory fsync'ed)
before the row that refers to it commits, and removed once no queued message needs it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from django.conf import settings


def root() -> Path:
    return Path(settings.BUZON_DATA_DIR) / "queue"


def path(sha256: str) -> Path:
    return root() / sha256[:2] / sha256


def put(raw: bytes) -> str:
    """Write `raw` durably (once per content); return its SHA-256."""
    sha = hashlib.sha256(raw).hexdigest()
    target = path(sha)
    if target.exists():
        return sha
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        view = memoryview(raw)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, target)
    dfd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return sha


def read(sha256: str) -> bytes:
    return path(sha256).read_bytes()


def remove(sha256: str) -> None:
    path(sha256).unlink(missing_ok=True)
