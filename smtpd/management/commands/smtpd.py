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
        parser.add_argument(
            "--workers",
            type=int,
            default=1,
            help="worker processes on the same ports (> 1 needs PostgreSQL and REDIS_URL); "
            "the queue sweep runs in the first one",
        )

    def handle(self, *, bind, smtp_port, submission_port, submissions_port, lmtp_port, **options):
        workers = options["workers"]
        try:
            daemon.check_workers(workers)
        except daemon.WorkersError as e:
            raise CommandError(str(e)) from e
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
        if not options["no_queue"] and workers == 1:
            jobs.start_worker()  # with workers, each starts its own when it first enqueues
        try:
            status = daemon.run(specs, self.announce, workers=workers, extra=extra)
        except OSError as e:
            raise CommandError(f"cannot listen on {bind}: {e.strerror}") from e
        finally:
            jobs.stop_worker()
        if status:
            raise CommandError("worker processes kept exiting; stopped (see the log)")

    def announce(self, name, host, port):
        self.stdout.write(f"{name} listening on {host}:{port}")
        self.stdout.flush()
