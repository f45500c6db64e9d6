import asyncio

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from imapd.imap import server
from mailhost import daemon, tls


class Command(BaseCommand):
    help = "Run the IMAP listeners (STARTTLS and implicit TLS)."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default=settings.BUZON_BIND)
        parser.add_argument("--imap-port", default=settings.BUZON_IMAP_PORT, help="'auto' = any")
        parser.add_argument(
            "--imaps-port", default=settings.BUZON_IMAPS_PORT, help="'auto' = any; 0 = off"
        )

    def handle(self, *, bind, imap_port, imaps_port, **options):
        tls.ensure_certificate()
        specs = server.listener_specs(bind, port_overrides={"imap": imap_port, "imaps": imaps_port})
        try:
            asyncio.run(daemon.serve_until_signal(specs, self.announce))
        except OSError as e:
            raise CommandError(f"cannot listen on {bind}: {e.strerror}") from e

    def announce(self, name, host, port):
        self.stdout.write(f"{name} listening on {host}:{port}")
        self.stdout.flush()
