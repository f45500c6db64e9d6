"""Local delivery of one message read on stdin; usable as Postfix's mailbox_command."""

import sys

from django.core.management.base import BaseCommand

from mailhost import store

EX_OK, EX_NOUSER, EX_UNAVAILABLE, EX_SOFTWARE, EX_TEMPFAIL = 0, 67, 69, 70, 75


class Command(BaseCommand):
    help = (
        "Deliver the message on stdin to -r ADDRESS (repeatable). Exits 0 when delivered, "
        "67 for an unknown user, 75 on a temporary failure, 69 on another permanent one."
    )

    def add_arguments(self, parser):
        parser.add_argument("-r", "--recipient", action="append", required=True)
        parser.add_argument("-f", "--sender", default="")
        parser.add_argument("--folder", default="INBOX", help="deliver into this folder")

    def handle(self, *, recipient, sender, folder, **options):
        stdin = options.get("stdin") or sys.stdin
        raw = stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read()
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        try:
            results = store.deliver(raw, mail_from=sender, rcpt_to=recipient, folder=folder)
        except Exception as e:
            self.stderr.write(f"deliver: temporary failure: {e}")
            sys.exit(EX_TEMPFAIL)
        code = EX_OK
        for result in results:
            stream = self.stdout if result.ok else self.stderr
            stream.write(f"{result.rcpt}: {result.reply}")
            if result.ok:
                continue
            if result.temporary:
                code = EX_TEMPFAIL
            elif result.enhanced == "5.1.1" and code == EX_OK:
                code = EX_NOUSER
            elif code == EX_OK:
                code = EX_UNAVAILABLE
        if code:
            sys.exit(code)
