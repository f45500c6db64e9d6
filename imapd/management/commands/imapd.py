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
        parser.add_argument(
            "--workers",
            type=int,
            default=1,
            help="worker processes on the same ports (> 1 needs PostgreSQL and REDIS_URL)",
        )

    def handle(self, *, bind, imap_port, imaps_port, workers, **options):
        try:
            daemon.check_workers(workers)
        except daemon.WorkersError as e:
            raise CommandError(str(e)) from e
        tls.ensure_certificate()
        specs = server.listener_specs(bind, port_overrides={"imap": imap_port, "imaps": imaps_port})
        try:
            status = daemon.run(specs, self.announce, workers=workers)
        except OSError as e:
            raise CommandError(f"cannot listen on {bind}: {e.strerror}") from e
        if status:
            raise CommandError("worker processes kept exiting; stopped (see the log)")

    def announce(self, name, host, port):
        self.stdout.write(f"{name} listening on {host}:{port}")
        self.stdout.flush()
