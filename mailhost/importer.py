"""Import Maildir and mbox into an account, and export an account back to them.

The one place where mail files meet the store: `mailhost.mailfiles` reads and writes files
(pure), this module turns records into `store.append_many` batches and mailboxes back into
files.

- Batches of BATCH_SIZE messages (at most BATCH_BYTES) go to `store.append_many` with
  `if_absent=True`, so running the same import again adds nothing. Blob files of the next
  batch are written on a few threads while the current batch commits (fsync is the slow
  part; `blobs.put` is idempotent and an unused blob is collected by `store.gc`).
- A file or message that cannot be read or stored is reported and skipped; a batch that
  fails is retried message by message so one bad message costs only itself. Over quota,
  a lost database and an unwritable data dir stop the import (Aborted).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import InterfaceError, OperationalError

from . import mailfiles, store
from .mail import address as addr
from .mailfiles import Folder, Problem, Record
from .mailfiles.maildir import MaildirWriter
from .mailfiles.mbox import FORMATS as MBOX_FORMATS
from .mailfiles.mbox import MboxWriter, is_mbox
from .models import Account

BATCH_SIZE = 200
BATCH_BYTES = 16 * 1024 * 1024
BLOB_THREADS = 4
EXPORT_FORMATS = ("maildir", "mbox")

Report = Callable[[str], None]
Progress = Callable[[int], None]


class Aborted(Exception):
    """A fatal error: nothing more can be imported or exported (the message says why)."""


@dataclass
class ImportStats:
    imported: int = 0
    duplicates: int = 0
    errors: int = 0
    folders_created: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"imported {self.imported}, skipped duplicates {self.duplicates}, "
            f"errors {self.errors}, folders created {len(self.folders_created)}"
        )


@dataclass
class ExportStats:
    messages: int = 0
    mailboxes: int = 0
    added_newlines: int = 0  # mbox: messages that got a final line break
    dropped_keywords: int = 0  # Maildir: keywords beyond a folder's 26 letters

    def summary(self) -> str:
        text = f"exported {self.messages} messages from {self.mailboxes} mailboxes"
        if self.added_newlines:
            text += f"; {self.added_newlines} did not end in a line break and got one (mbox)"
        if self.dropped_keywords:
            text += f"; {self.dropped_keywords} keywords dropped (over 26 in one folder)"
        return text


def account_id_for(address: str) -> int:
    """Return the id of the account `address`; Aborted when there is none."""
    found = Account.objects.filter(address=addr.normalize(address)).values_list("id", flat=True)
    account_id = found.first()
    if account_id is None:
        raise Aborted(f"no account {address}")
    return account_id


def count_messages(path: Path) -> int:
    """How many messages an import of `path` will read (0 when unknown)."""
    try:
        return mailfiles.count(path)
    except OSError:
        return 0


# Import --------------------------------------------------------------------------------


@dataclass
class _Batch:
    folder: str
    records: list[Record]
    blobs: list[Future]


class _Importer:
    def __init__(self, account_id: int, report: Report, progress: Progress, batch_size: int):
        self.account_id = account_id
        self.report = report
        self.progress = progress
        self.batch_size = batch_size
        self.stats = ImportStats()
        self.bad_folders: set[str] = set()
        self.pool = ThreadPoolExecutor(BLOB_THREADS, thread_name_prefix="import-blob")
        self.pending: deque[_Batch] = deque()
        self.folder: str | None = None
        self.records: list[Record] = []
        self.size = 0

    def run(self, items) -> ImportStats:
        try:
            for item in items:
                if isinstance(item, Record):
                    self.add(item)
                elif isinstance(item, Folder):
                    self.start_folder(item.name)
                else:
                    self.problem(item)
            self.cut()
            while self.pending:
                self.flush(self.pending.popleft())
        except OSError as e:  # the tree itself went away or became unreadable
            raise Aborted(f"cannot read: {e}") from e
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
        return self.stats

    def problem(self, problem: Problem) -> None:
        self.stats.errors += 1
        self.report(f"skipped {problem.source}: {problem.reason}")
        self.progress(1)

    def start_folder(self, name: str) -> None:
        self.cut()
        self.folder = name
        try:
            name.encode("utf-8")  # a directory name in another charset
            store.create_mailbox(self.account_id, name)
        except UnicodeEncodeError:
            self.bad_folders.add(name)
            self.report(f"skipped folder {name!r}: its name is not UTF-8")
            return
        except store.MailboxExists:
            return
        except store.InvalidMailboxName as e:
            self.bad_folders.add(name)
            self.report(f"skipped folder {name!r}: {e}")
            return
        self.stats.folders_created.append(name)

    def add(self, record: Record) -> None:
        if record.folder in self.bad_folders:
            self.stats.errors += 1
            self.progress(1)
            return
        if record.folder != self.folder:
            self.start_folder(record.folder)
        self.records.append(record)
        self.size += len(record.raw)
        if len(self.records) >= self.batch_size or self.size >= BATCH_BYTES:
            self.cut()

    def cut(self) -> None:
        """Close the current batch: start writing its blobs, and commit the one before."""
        if not self.records:
            return
        assert self.folder is not None
        futures = [self.pool.submit(store.blobs.put, r.raw) for r in self.records]
        self.pending.append(_Batch(self.folder, self.records, futures))
        self.records, self.size = [], 0
        while len(self.pending) > 1:
            self.flush(self.pending.popleft())

    def flush(self, batch: _Batch) -> None:
        for future in batch.blobs:
            try:
                future.result()
            except OSError as e:
                raise Aborted(f"cannot write to the data directory: {e}") from e
        items = [store.AppendItem(r.raw, r.flags, r.internaldate) for r in batch.records]
        try:
            results = store.append_many(self.account_id, batch.folder, items, if_absent=True)
        except store.OverQuota as e:
            raise Aborted(f"{e} (after {self.stats.imported} messages)") from e
        except (OperationalError, InterfaceError) as e:
            raise Aborted(f"database error: {e}") from e
        except Exception:  # one bad message: find it by storing them one by one
            results = [self.append_one(batch.folder, r) for r in batch.records]
        for result in results:
            if result is None:
                self.stats.duplicates += 1
            elif result is not False:
                self.stats.imported += 1
        self.progress(len(results))

    def append_one(self, folder: str, record: Record):
        """store.append for one record: the Appended, None for a duplicate, False on error."""
        try:
            return store.append(
                self.account_id,
                folder,
                record.raw,
                flags=record.flags,
                internaldate=record.internaldate,
                if_absent=True,
            )
        except store.OverQuota as e:
            raise Aborted(f"{e} (after {self.stats.imported} messages)") from e
        except (OperationalError, InterfaceError) as e:
            raise Aborted(f"database error: {e}") from e
        except Exception as e:
            self.stats.errors += 1
            self.report(f"skipped {record.source}: {type(e).__name__}: {e}")
            return False


def import_path(
    account_id: int,
    path: Path,
    *,
    mbox_format: str = "mboxrd",
    folder: str = "INBOX",
    batch_size: int = BATCH_SIZE,
    report: Report = lambda message: None,
    progress: Progress = lambda n: None,
) -> ImportStats:
    """Import the Maildir, mbox file or folder of mbox files at `path` into the account.

    `folder` is the mailbox for a single mbox file. `report` gets one line per skipped
    file or message, `progress` the number of messages just handled.
    """
    if mbox_format not in MBOX_FORMATS:
        raise Aborted(f"unknown mbox format {mbox_format!r}; use one of {MBOX_FORMATS}")
    if not path.exists():
        raise Aborted(f"{path} does not exist")
    if not os.access(path, os.R_OK):
        raise Aborted(f"{path} is not readable")
    try:
        if path.is_file() and not is_mbox(path):
            raise Aborted(f"{path} is neither a Maildir nor an mbox file (no 'From ' line)")
    except OSError as e:
        raise Aborted(f"cannot read {path}: {e.strerror or e}") from e
    try:
        items = mailfiles.read(
            path,
            mbox_format=mbox_format,
            folder=folder,
            max_size=settings.BUZON_MAX_MESSAGE_SIZE,
        )
    except OSError as e:
        raise Aborted(f"cannot read {path}: {e.strerror or e}") from e
    return _Importer(account_id, report, progress, max(1, batch_size)).run(items)


# Export --------------------------------------------------------------------------------


def export_account(
    account_id: int,
    dest: Path,
    fmt: str,
    *,
    progress: Progress = lambda n: None,
) -> ExportStats:
    """Write every mailbox of the account under `dest` (which must be new or empty)."""
    if fmt not in EXPORT_FORMATS:
        raise Aborted(f"unknown format {fmt!r}; use one of {EXPORT_FORMATS}")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise Aborted(f"{dest} exists and is not an empty directory")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise Aborted(f"cannot create {dest}: {e.strerror or e}") from e
    stats = ExportStats()
    writer = MaildirWriter(dest) if fmt == "maildir" else MboxWriter(dest)
    try:
        with writer:
            for box in store.list_mailboxes(account_id):
                writer.folder(box.name)
                stats.mailboxes += 1
                uids = store.message_uids(account_id, box.id)
                for i in range(0, len(uids), 500):
                    for meta in store.fetch_meta(account_id, box.id, uids[i : i + 500]):
                        raw = store.blobs.read(meta.sha256)
                        writer.write(box.name, raw, meta.flags, meta.internaldate)
                        stats.messages += 1
                        progress(1)
    except OSError as e:
        raise Aborted(f"cannot write under {dest}: {e.strerror or e}") from e
    if isinstance(writer, MboxWriter):
        stats.added_newlines = writer.added_newlines
    else:
        stats.dropped_keywords = writer.dropped_keywords
    return stats


def total_messages(account_id: int) -> int:
    return sum(store.mailbox_status(box.id).messages for box in store.list_mailboxes(account_id))
