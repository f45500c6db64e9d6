"""Byte-exact, content-addressed message files under BUZON_DATA_DIR/blobs.

A blob is written to a temporary file, fsync'ed, renamed into place and its directory
fsync'ed before the transaction that makes it visible commits, so an acknowledged message
is on disk whatever happens to the process afterwards.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from django.conf import settings


def root() -> Path:
    return Path(settings.BUZON_DATA_DIR) / "blobs"


def digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def path(sha256: str) -> Path:
    return Path(file_name(sha256))


_root_cache: tuple[object, str] = (None, "")


def file_name(sha256: str) -> str:
    """The blob's path as a string, built without pathlib (IMAP reads hundreds a second)."""
    global _root_cache
    data_dir = settings.BUZON_DATA_DIR
    if _root_cache[0] != data_dir:
        _root_cache = (data_dir, str(root()))
    return f"{_root_cache[1]}/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def exists(sha256: str) -> bool:
    return path(sha256).exists()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(target: Path, raw: bytes) -> None:
    """Write `raw` to `target` so that it is whole on disk when this returns: a temporary
    file, fsync, rename, directory fsync. Readers never see a half-written file."""
    directory = target.parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
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
    _fsync_dir(directory)


def put(raw: bytes, sha256: str | None = None) -> str:
    """Write `raw` durably unless a blob with its digest is already there; return the digest."""
    sha256 = sha256 or digest(raw)
    target = path(sha256)
    if not target.exists():
        write_durably(target, raw)
    return sha256


def read(sha256: str, start: int = 0, end: int | None = None) -> bytes:
    with open(file_name(sha256), "rb") as f:
        if start:
            f.seek(start)
        return f.read() if end is None else f.read(max(0, end - start))


def open_blob(sha256: str) -> BinaryIO:
    """Open for streaming (POP3 RETR of a 50 MB message must not load it whole)."""
    return open(file_name(sha256), "rb")


def remove(sha256: str) -> None:
    try:
        os.unlink(path(sha256))
    except FileNotFoundError:
        pass


def iter_files():
    """Yield (sha256, Path, mtime) for every blob file and leftover temporary file."""
    base = root()
    if not base.exists():
        return
    for first in base.iterdir():
        if not first.is_dir():
            continue
        for second in first.iterdir():
            if not second.is_dir():
                continue
            for entry in second.iterdir():
                try:
                    mtime = entry.stat().st_mtime
                except FileNotFoundError:
                    continue
                yield entry.name, entry, mtime
