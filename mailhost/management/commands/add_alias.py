from django.core.management.base import BaseCommand, CommandError

from mailhost.directory import DirectoryError, add_alias


class Command(BaseCommand):
    help = "Add an alias (local@domain, or @domain for a catch-all) to one or more addresses."

    def add_arguments(self, parser):
        parser.add_argument("source")
        parser.add_argument("destinations", nargs="+")

    def handle(self, *, source, destinations, **options):
        try:
            alias = add_alias(source, destinations)
        except DirectoryError as e:
            raise CommandError(str(e)) from e
        self.stdout.write(f"alias {alias.source} -> {', '.join(destinations)}")
