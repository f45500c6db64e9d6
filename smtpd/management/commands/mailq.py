from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from mailhost import jobs, queue, tasks


class Command(BaseCommand):
    help = "List the outbound queue, or flush, delete, hold or release queued messages."

    def add_arguments(self, parser):
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--flush", action="store_true", help="attempt every message now")
        group.add_argument("--delete", type=int, metavar="ID", help="drop a message, no DSN")
        group.add_argument("--hold", type=int, metavar="ID", help="stop attempts for a message")
        group.add_argument("--release", type=int, metavar="ID", help="resume a held message")

    def handle(self, *, flush, delete, hold, release, **options):
        if flush:
            due = queue.flush()
            for message_id in due:
                jobs.enqueue(tasks.deliver_queued, message_id)
            jobs.drain(timeout=60)
            self.stdout.write(f"flushed {len(due)} message(s)")
            return
        for value, action, verb in (
            (delete, queue.delete, "deleted"),
            (hold, queue.hold, "held"),
            (release, queue.release, "released"),
        ):
            if value is not None:
                if not action(value):
                    raise CommandError(f"no queued message {value}")
                self.stdout.write(f"{verb} {value}")
                return
        self.list()

    def list(self) -> None:
        entries = queue.entries()
        if not entries:
            self.stdout.write("Mail queue is empty")
            return
        now = timezone.now()
        for e in entries:
            flag = " HELD" if e.held else ""
            sender = e.mail_from or "<>"
            self.stdout.write(
                f"{e.id:<8} {e.size:>9} {e.created:%Y-%m-%d %H:%M:%S} {e.kind:<10} {sender}{flag}"
            )
            for r in e.recipients:
                wait = max(0, int((r["next_attempt"] - now).total_seconds()))
                self.stdout.write(
                    f"         {r['address']}  {r['state']}, {r['attempts']} attempt(s),"
                    f" next in {wait}s"
                )
                if r["last_reply"]:
                    self.stdout.write(f"           last reply: {r['last_reply']}")
        self.stdout.write(f"-- {len(entries)} message(s)")
