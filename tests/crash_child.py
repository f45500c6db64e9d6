"""Deliver messages in a loop, printing `ACK uid sha256` after each acknowledged one.

The crash-safety test kills this process with SIGKILL at random points.
"""

import os
import random
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from mailhost import store  # noqa: E402
from mailhost.store import blobs  # noqa: E402


def main() -> None:
    rng = random.Random(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    for i in range(100_000):
        body = os.urandom(rng.randint(100, 200_000)).hex().encode()
        raw = b"Subject: crash %d\r\n\r\n" % i + body + b"\r\n"
        [result] = store.deliver(raw, mail_from="", rcpt_to=["alice@example.test"])
        if result.ok:
            print(f"ACK {result.delivered[0].uid} {blobs.digest(raw)}", flush=True)


if __name__ == "__main__":
    main()
