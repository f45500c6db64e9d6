"""Export every mailbox of an account as a Maildir++ tree or a folder of mbox files."""

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from mailhost import importer
from mailhost.management.commands.import_mail import progress_bar


class Command(BaseCommand):
    help = (
        "Export ADDRESS into DEST (new or empty): --format maildir writes Maildir++ with flags "
        "in file names and dovecot-keywords; --format mbox writes one mboxrd file per mailbox "
        "(Lists/python.mbox). Message bytes are kept exactly (mbox adds a final line break to "
        "a message without one)."
    )

    def add_arguments(self, parser):
        parser.add_argument("address")
        parser.add_argument("dest", type=Path)
        parser.add_argument("--format", dest="fmt", choices=importer.EXPORT_FORMATS, required=True)
        parser.add_argument(
            "--progress", action="store_true", help="show the progress bar even off a terminal"
        )

    def handle(self, *, address, dest, fmt, progress, **options):
        stream = options.get("stderr") or sys.stderr
        try:
            account_id = importer.account_id_for(address)
            total = importer.total_messages(account_id)
            with progress_bar(stream, total, progress, "export") as bar:
                stats = importer.export_account(account_id, dest, fmt, progress=bar.update)
        except importer.Aborted as e:
            raise CommandError(f"export stopped: {e}") from e
        self.stdout.write(stats.summary())
