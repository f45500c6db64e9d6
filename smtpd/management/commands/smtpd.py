import asyncio
from smtpd import server

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mailhost import daemon, tls


class Command(BaseCommand):
    help = "Run the SMTP-family listeners (LMTP now; MX and submission with the SMTP issue)."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default=settings.BUZON_BIND)
        parser.add_argument("--lmtp-port", default=settings.BUZON_LMTP_PORT, help="'auto' = any")

    def handle(self, *, bind, lmtp_port, **options):
        tls.ensure_certificate()
        specs = server.listener_specs(bind, port_overrides={"lmtp": lmtp_port})
        try:
            asyncio.run(daemon.serve_until_signal(specs, self.announce))
        except OSError as e:
            raise CommandError(f"cannot listen on {bind}: {e.strerror}") from e

    def announce(self, name, host, port):
        self.stdout.write(f"{name} listening on {host}:{port}")
        self.stdout.flush()
