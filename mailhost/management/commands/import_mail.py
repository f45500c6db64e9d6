"""Import a Maildir, an mbox file or a folder of mbox files into an account."""

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from mailhost import importer


def progress_bar(stream, total: int, forced: bool, desc: str) -> tqdm:
    """Messages done, rate and time left on `stream`; only on a terminal unless `forced`."""
    on_tty = hasattr(stream, "isatty") and stream.isatty()
    return tqdm(
        total=total or None,
        unit="msg",
        desc=desc,
        file=stream,
        disable=not (forced or on_tty),
        dynamic_ncols=True,
        mininterval=0.5,
    )


class Command(BaseCommand):
    help = (
        "Import mail into ADDRESS from PATH: a Maildir (Maildir++ folders, flags in file names, "
        "Dovecot keywords), an mbox file (into --folder) or a folder of mbox files. Messages "
        "already in the mailbox are skipped, so a re-run adds nothing. Unreadable files are "
        "reported and skipped; the exit status is non-zero only when the import could not go on."
    )

    def add_arguments(self, parser):
        parser.add_argument("address")
        parser.add_argument("path", type=Path)
        parser.add_argument(
            "--mbox-format",
            choices=["mboxrd", "mboxo"],
            default="mboxrd",
            help="mboxrd (default) removes one '>' from '>From ' lines; mboxo leaves them",
        )
        parser.add_argument(
            "--folder", default="INBOX", help="mailbox for a single mbox file (default INBOX)"
        )
        parser.add_argument(
            "--progress", action="store_true", help="show the progress bar even off a terminal"
        )
        parser.add_argument("--batch-size", type=int, default=importer.BATCH_SIZE)

    def handle(self, *, address, path, mbox_format, folder, progress, batch_size, **options):
        stream = options.get("stderr") or sys.stderr
        try:
            account_id = importer.account_id_for(address)
            total = importer.count_messages(path) if path.exists() else 0
            with progress_bar(stream, total, progress, "import") as bar:

                def report(message: str) -> None:
                    tqdm.write(message, file=stream)

                stats = importer.import_path(
                    account_id,
                    path,
                    mbox_format=mbox_format,
                    folder=folder,
                    batch_size=batch_size,
                    report=report,
                    progress=bar.update,
                )
        except importer.Aborted as e:
            raise CommandError(f"import stopped: {e}") from e
        self.stdout.write(stats.summary())
