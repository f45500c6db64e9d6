from django.core.management.base import BaseCommand, CommandError

from mailhost import outbound_dkim
from mailhost.models import Domain


class Command(BaseCommand):
    help = "Make a DKIM key for a domain (RSA 2048 or Ed25519) and print the TXT record."

    def add_arguments(self, parser):
        parser.add_argument("domain")
        parser.add_argument("--selector", default="buzon")
        parser.add_argument("--ed25519", action="store_true", help="Ed25519 (RFC 8463)")
        parser.add_argument("--force", action="store_true", help="replace an existing key")

    def handle(self, *, domain, selector, ed25519, force, **options):
        name = domain.strip().lower().rstrip(".")
        if not Domain.objects.filter(name=name).exists():
            raise CommandError(f"Domain {name} does not exist; add it first")
        if outbound_dkim.load(name) is not None and not force:
            key = outbound_dkim.load(name)
            self.stdout.write(f"{name} already has a key (use --force to replace it):")
        else:
            key = outbound_dkim.generate(name, selector, ed25519=ed25519)
            self.stdout.write(f"Made a {key.algorithm} key for {name}; publish:")
        self.stdout.write(outbound_dkim.txt_record(key))
