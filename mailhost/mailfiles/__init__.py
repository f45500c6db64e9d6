"""Mail on disk: Maildir(++) and mbox readers and writers, for import and export.

Pure Python: never imports Django or the store (`mailhost/importer.py` joins the two).

Readers walk a path and yield, in a stable order:
- `Folder(name)` once before the messages of each mailbox (also for empty ones),
- `Record(folder, raw, flags, internaldate, source)` for each message,
- `Problem(folder, source, reason)` for a file or message that cannot be read; the reader
  goes on with the next one.

Invariants:
- Message bytes pass through unchanged: mboxrd `>From ` quoting is undone exactly, the
  separator blank line before a `From ` line is not part of the message, nothing else is
  touched (Status:, X-Status: and friends stay in the bytes).
- Files are streamed: an mbox is read line by line and a message is held in memory only
  until it is yielded, and no longer than `max_size` bytes.
- Folder names use `/` as the hierarchy delimiter and IMAP flag names (`\\Seen`, `$Forwarded`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

__all__ = ["Folder", "Item", "Problem", "Record", "count", "detect", "read"]


@dataclass(frozen=True)
class Folder:
    """A mailbox begins; the records of `name` follow."""

    name: str


@dataclass(frozen=True)
class Record:
    """One message: its mailbox, exact bytes, IMAP flags and INTERNALDATE (None: unknown)."""

    folder: str
    raw: bytes
    flags: tuple[str, ...]
    internaldate: datetime | None
    source: str  # where it came from, for messages to the user: a path, or path:line


@dataclass(frozen=True)
class Problem:
    """A file or message that could not be read: report it, skip it, go on."""

    folder: str
    source: str
    reason: str


Item = Folder | Record | Problem


def detect(path: Path) -> str:
    """Return `maildir`, `mbox` (one file) or `mbox-tree` (a folder of mbox files)."""
    if path.is_file():
        return "mbox"
    if path.is_dir():
        from .maildir import is_maildir

        return "maildir" if is_maildir(path) else "mbox-tree"
    raise FileNotFoundError(f"{path} is neither a file nor a directory")


def read(
    path: Path,
    *,
    mbox_format: str = "mboxrd",
    folder: str = "INBOX",
    max_size: int | None = None,
) -> Iterator[Item]:
    """Yield what `path` holds; `folder` names the mailbox of a single mbox file."""
    from .maildir import read_maildir
    from .mbox import read_mbox, read_mbox_tree

    kind = detect(path)
    if kind == "maildir":
        return read_maildir(path, max_size=max_size)
    if kind == "mbox":
        return read_mbox(path, folder, mbox_format=mbox_format, max_size=max_size)
    return read_mbox_tree(path, mbox_format=mbox_format, max_size=max_size)


def count(path: Path) -> int:
    """Return how many messages `read(path)` will yield, cheaply (for a progress bar)."""
    from .maildir import count_maildir
    from .mbox import count_mbox, count_mbox_tree

    kind = detect(path)
    if kind == "maildir":
        return count_maildir(path)
    if kind == "mbox":
        return count_mbox(path)
    return count_mbox_tree(path)
