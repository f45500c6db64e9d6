import asyncio
from smtpd import server

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mailhost import daemon, jobs, tls


class Command(BaseCommand):
    help = "Run the SMTP-family listeners (MX, submission, submissions, LMTP) and the queue."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default=settings.BUZON_BIND)
        for name, default in [
            ("smtp", settings.BUZON_SMTP_PORT),
            ("submission", settings.BUZON_SUBMISSION_PORT),
            ("submissions", settings.BUZON_SUBMISSIONS_PORT),
            ("lmtp", settings.BUZON_LMTP_PORT),
        ]:
            parser.add_argument(f"--{name}-port", default=default, help="'auto' = any, 0 = off")
        parser.add_argument("--no-queue", action="store_true", help="no periodic queue sweep here")

    def handle(self, *, bind, smtp_port, submission_port, submissions_port, lmtp_port, **options):
        tls.ensure_certificate()
        specs = server.listener_specs(
            bind,
            port_overrides={
                "smtp": smtp_port,
                "submission": submission_port,
                "submissions": submissions_port,
                "lmtp": lmtp_port,
            },
        )
        extra = [] if options["no_queue"] else [server.queue_runner]
        if not options["no_queue"]:
            jobs.start_worker()
        try:
            asyncio.run(daemon.serve_until_signal(specs, self.announce, extra=extra))
        except OSError as e:
            raise CommandError(f"cannot listen on {bind}: {e.strerror}") from e
        finally:
            jobs.stop_worker()

    def announce(self, name, host, port):
        self.stdout.write(f"{name} listening on {host}:{port}")
        self.stdout.flush()
