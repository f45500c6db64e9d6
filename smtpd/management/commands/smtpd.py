from smtpd import server

from mailhost import jobs
from mailhost.daemon_command import DaemonCommand


class Command(DaemonCommand):
    help = "Run the SMTP-family listeners (MX, submission, submissions, LMTP) and the queue."
    ports = [
        ("smtp", "BUZON_SMTP_PORT"),
        ("submission", "BUZON_SUBMISSION_PORT"),
        ("submissions", "BUZON_SUBMISSIONS_PORT"),
        ("lmtp", "BUZON_LMTP_PORT"),
    ]

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--no-queue",
            action="store_true",
            help="no periodic queue sweep here (with --workers it runs in the first worker)",
        )

    def listener_specs(self, bind, ports):
        return server.listener_specs(bind, port_overrides=ports)

    def extra_tasks(self, workers, options):
        if options["no_queue"]:
            return []
        if workers == 1:
            jobs.start_worker()  # with workers, each starts its own when it first enqueues
        return [server.queue_runner]

    def stopped(self, options):
        jobs.stop_worker()
