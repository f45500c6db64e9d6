from django.core.management.base import BaseCommand, CommandError

from mailhost.config import parse_size
from mailhost.directory import DirectoryError, add_account


class Command(BaseCommand):
    help = "Add a mail account (with INBOX, Sent, Drafts, Trash, Junk, Archive)."

    def add_arguments(self, parser):
        parser.add_argument("address")
        parser.add_argument("--password", required=True)
        parser.add_argument("--quota", help="e.g. 500M, 2G; 0 = unlimited")
        parser.add_argument("--name", default="", help="display name")

    def handle(self, *, address, password, quota, name, **options):
        try:
            size = parse_size(quota) if quota else None
        except ValueError as e:
            raise CommandError(f"bad --quota {quota!r}") from e
        try:
            account = add_account(address, password, quota=size, display_name=name)
        except DirectoryError as e:
            raise CommandError(str(e)) from e
        self.stdout.write(f"account {account.address} added")
