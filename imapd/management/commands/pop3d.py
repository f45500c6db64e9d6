from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from imapd.pop3 import server
from mailhost import daemon, tls


class Command(BaseCommand):
    help = "Run the POP3 listeners: POP3 with STLS and POP3S (implicit TLS)."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default=settings.BUZON_BIND)
        parser.add_argument("--pop3-port", default=settings.BUZON_POP3_PORT, help="'auto' = any")
        parser.add_argument("--pop3s-port", default=settings.BUZON_POP3S_PORT, help="'auto' = any")

        parser.add_argument(
            "--workers",
            type=int,
            default=1,
            help="worker processes on the same ports (> 1 needs PostgreSQL and REDIS_URL)",
        )

    def handle(self, *, bind, pop3_port, pop3s_port, workers, **options):
        for value in (pop3_port, pop3s_port):
            if value != "auto" and not str(value).isdigit():
                raise CommandError(f"a port is a number or 'auto', not {value!r}")
        try:
            daemon.check_workers(workers)
        except daemon.WorkersError as e:
            raise CommandError(str(e)) from e
        tls.ensure_certificate()
        specs = server.listener_specs(bind, port_overrides={"pop3": pop3_port, "pop3s": pop3s_port})
        try:
            status = daemon.run(specs, self.announce, workers=workers)
        except OSError as e:
            raise CommandError(f"cannot listen on {bind}: {e.strerror}") from e
        if status:
            raise CommandError("worker processes kept exiting; stopped (see the log)")

    def announce(self, name, host, port):
        self.stdout.write(f"{name} listening on {host}:{port}")
        self.stdout.flush()
