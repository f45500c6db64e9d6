"""SEARCH, SORT and THREAD on one big mailbox: prints a table of timings.

    .venv/bin/python bench/search_bench.py [--messages 100000] [--repeat 5] [--no-body]

Uses DATABASE_URL (default SQLite in a throw-away data dir). Seeding bypasses store.append
(one fsync'ed transaction per message would take many minutes for 100,000): messages are
parsed with the real parser, blobs written without fsync, rows bulk-inserted. Every search
below runs through mailhost.store.search exactly as IMAP calls it.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import database_label, fresh_account, peak_rss_mb, setup_django, table  # noqa: E402

WORDS = (
    "report budget meeting lunch invoice travel plan review draft update project team "
    "quarterly release server backup holiday party agenda notes question answer urgent "
    "contract offer design launch feedback schedule weekly monthly summary status"
).split()
NAMES = ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy"]


def make_message(i: int, rng: random.Random) -> tuple[bytes, datetime]:
    subject = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6)))
    if i % 5000 == 0:
        subject += " xylophone"  # rare: ~20 matches per 100,000
    if i % 7 == 0:
        subject = "Re: " + subject
    if i % 1000 == 0:
        subject += " отпуск"
    sender = rng.choice(NAMES)
    sent = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(minutes=37 * i)
    parent = rng.randint(0, i - 1) if i and rng.random() < 0.4 else None
    refs = f"In-Reply-To: <{parent}@bench>\r\nReferences: <{parent}@bench>\r\n" if parent else ""
    body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 200)))
    if i % 10000 == 0:
        body += " zanzibar"
    head = (
        f"From: {sender} <{sender.lower()}@example.org>\r\n"
        f"To: Alice <alice@bench.test>, {rng.choice(NAMES)} <x{i % 97}@example.net>\r\n"
        f"Subject: {subject}\r\nMessage-ID: <{i}@bench>\r\n{refs}"
        f"Date: {sent.strftime('%a, %d %b %Y %H:%M:%S +0000')}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    return (head + body + "\r\n").encode(), sent


def seed(account, count: int) -> int:
    """Insert `count` messages into the account's INBOX; return the mailbox id."""
    from django.db import transaction

    from mailhost.mail.parse import parse_message
    from mailhost.models import Content, Mailbox, Message
    from mailhost.store import blobs

    box = Mailbox.objects.get(account=account, name="INBOX")
    rng = random.Random(42)
    batch = 2000
    keywords = ["", "", "", "work", "$Label1", "todo work"]
    for start in range(0, count, batch):
        contents, messages = [], []
        for i in range(start, min(count, start + batch)):
            raw, sent = make_message(i, rng)
            sha = blobs.digest(raw)
            target = blobs.path(sha)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(raw)
            p = parse_message(raw)
            contents.append(
                Content(
                    sha256=sha,
                    size=p.size,
                    refcount=1,
                    header_end=p.header_end,
                    envelope=p.envelope,
                    body=p.body,
                    bodystructure=p.bodystructure,
                    parts=json.dumps(p.parts, separators=(",", ":")),
                    subject=p.subject,
                    base_subject=p.base_subject,
                    from_display=p.from_display,
                    from_addr=p.from_addr,
                    to=p.to,
                    cc=p.cc,
                    bcc=p.bcc,
                    date=p.date,
                    message_id=p.message_id,
                    in_reply_to=p.in_reply_to,
                    references=" ".join(p.references),
                    preview=p.preview,
                )
            )
            messages.append((i, raw, sent))
        with transaction.atomic():
            Content.objects.bulk_create(contents, batch_size=500)
            ids = dict(
                Content.objects.filter(sha256__in=[c.sha256 for c in contents]).values_list(
                    "sha256", "id"
                )
            )
            Message.objects.bulk_create(
                [
                    Message(
                        mailbox=box,
                        uid=i + 1,
                        modseq=i + 1,
                        flags=(1 if i % 3 else 0) | (4 if i % 50 == 0 else 0),
                        keywords=keywords[i % len(keywords)],
                        internaldate=sent + timedelta(minutes=5),
                        size=len(raw),
                        content_id=ids[c.sha256],
                    )
                    for (i, raw, sent), c in zip(messages, contents, strict=True)
                ],
                batch_size=500,
            )
    Mailbox.objects.filter(id=box.id).update(uidnext=count + 1, highestmodseq=count + 1)
    return box.id


def timed(fn, repeat: int) -> tuple[list[float], object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-body", action="store_true", help="skip the blob-scanning searches")
    args = parser.parse_args()

    setup_django()
    from django.conf import settings

    from imapd.imap import threading as th
    from mailhost.store import search as s
    from mailhost.store.search import And, Key, Not, Or

    settings.BUZON_SEARCH_MAX_SECONDS = 600
    settings.BUZON_SEARCH_MAX_BYTES = 1 << 40
    account = fresh_account("search@bench.test")
    t0 = time.perf_counter()
    box = seed(account, args.messages)
    seeded = time.perf_counter() - t0
    n = args.messages
    all_uids = frozenset(range(1, n + 1))
    scattered = frozenset(range(1, n + 1, 3))

    def run(criteria, **kw):
        return lambda: s.search(account.id, box, criteria, **kw)

    cases = [
        ("SUBJECT x", run(Key("SUBJECT", ("x",))), args.repeat),
        ("SUBJECT xylophone (rare)", run(Key("SUBJECT", ("xylophone",))), args.repeat),
        ("SUBJECT report (common)", run(Key("SUBJECT", ("report",))), args.repeat),
        ("SUBJECT ОТПУСК (non-ASCII)", run(Key("SUBJECT", ("ОТПУСК",))), args.repeat),
        ("FROM carol", run(Key("FROM", ("carol",))), args.repeat),
        ("TO x42@", run(Key("TO", ("x42@",))), args.repeat),
        ("FLAGGED", run(Key("FLAGGED")), args.repeat),
        ("UNSEEN", run(Key("UNSEEN")), args.repeat),
        ("KEYWORD work", run(Key("KEYWORD", ("work",))), args.repeat),
        ("SINCE 1-Jan-2021", run(Key("SINCE", (date(2021, 1, 1),))), args.repeat),
        ("SENTSINCE 1-Jan-2021", run(Key("SENTSINCE", (date(2021, 1, 1),))), args.repeat),
        ("SENTON 5-Feb-2020", run(Key("SENTON", (date(2020, 2, 5),))), args.repeat),
        ("LARGER 1000", run(Key("LARGER", (1000,))), args.repeat),
        ("UID 1:* (set of all)", run(Key("UID", (all_uids,))), args.repeat),
        ("UID every 3rd", run(Key("UID", (scattered,))), args.repeat),
        (
            "UNSEEN OR FLAGGED NOT FROM bob",
            run(And((Key("UNSEEN"), Or(Key("FLAGGED"), Not(Key("FROM", ("bob",))))))),
            args.repeat,
        ),
        ("ALL", run(Key("ALL")), args.repeat),
    ]
    if not args.no_body:
        cases += [
            ("BODY zanzibar (blobs)", run(Key("BODY", ("zanzibar",))), 1),
            ("HEADER Message-ID <77@bench>", run(Key("HEADER", ("Message-ID", "<77@bench>"))), 1),
            (
                "FLAGGED BODY zanzibar",
                run(And((Key("FLAGGED"), Key("BODY", ("zanzibar",))))),
                args.repeat,
            ),
        ]

    rows = []
    for label, fn, repeat in cases:
        times, result = timed(fn, repeat)
        rows.append([label, len(result), min(times), sorted(times)[len(times) // 2], max(times)])

    uids = list(range(1, n + 1))
    times, srows = timed(lambda: s.sort_rows(account.id, box, uids), 1)
    rows.append(["sort_rows (all)", len(srows), times[0], times[0], times[0]])
    keys = [("SUBJECT", False), ("DATE", True)]
    times, _ = timed(lambda: th.sort_uids(srows, keys), args.repeat)
    rows.append(
        [
            "sort_uids SUBJECT REVERSE DATE",
            n,
            min(times),
            sorted(times)[len(times) // 2],
            max(times),
        ]
    )
    times, trows = timed(lambda: s.thread_rows(account.id, box, uids), 1)
    rows.append(["thread_rows (all)", len(trows), times[0], times[0], times[0]])
    for algorithm in ("REFERENCES", "ORDEREDSUBJECT"):
        times, tree = timed(lambda a=algorithm: th.thread(trows, a), 1)
        rows.append([f"thread {algorithm} (threads)", len(tree), times[0], times[0], times[0]])
        times, out = timed(lambda t=tree: th.format_threads(t), 1)
        rows.append([f"format_threads {algorithm} (bytes)", len(out), *times * 3])

    print(
        table(
            f"search bench: {n:,} messages in one mailbox on {database_label()} "
            f"(seeded in {seeded:.0f} s); peak RSS {peak_rss_mb():.0f} MB",
            ["operation", "results", "min ms", "p50 ms", "max ms"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
