from django.core.management.base import BaseCommand, CommandError

from mailhost.directory import DirectoryError, add_domain


class Command(BaseCommand):
    help = "Add a mail domain we accept mail for."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *, name, **options):
        try:
            domain = add_domain(name)
        except DirectoryError as e:
            raise CommandError(str(e)) from e
        self.stdout.write(f"domain {domain.name} added")
