"""IMAP load: C clients doing a realistic mix, a 100,000-message mailbox, 1,000 IDLE sessions.

    .venv/bin/python bench/imap_load.py [--clients 50] [--seconds 20] [--messages 200]
        [--big 100000] [--idle 1000] [--skip-big] [--skip-idle]

The server is `manage.py imapd` in a child process (as production runs it), so the client
load does not share its interpreter; its peak RSS is sampled with psutil. Clients are
asyncio raw-protocol clients on 127.0.0.1. Uses DATABASE_URL (default: SQLite in a
throw-away data dir). Every loop is bounded in count and in time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    REPO,
    database_label,
    fresh_account,
    message,
    setup_django,
    stats,
    table,
)

PASSWORD = "bench-password"
_LITERAL = re.compile(rb"\{(\d+)\}\r\n$")


class Client:
    """A minimal IMAP client: one command at a time, whole responses with literals."""

    def __init__(self) -> None:
        self.n = 0

    async def connect(self, port: int) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port, limit=2**22)
        await self.reader.readline()

    async def read_line(self) -> bytes:
        line = await self.reader.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        m = _LITERAL.search(line)
        while m:
            line += await self.reader.readexactly(int(m.group(1)))
            more = await self.reader.readline()
            line += more
            m = _LITERAL.search(more)
        return line

    async def command(self, text: bytes, literal: bytes | None = None) -> list[bytes]:
        self.n += 1
        tag = b"t%d" % self.n
        if literal is None:
            self.writer.write(tag + b" " + text + b"\r\n")
        else:
            self.writer.write(b"%s %s {%d+}\r\n%s\r\n" % (tag, text, len(literal), literal))
        lines = []
        while True:
            line = await self.read_line()
            lines.append(line)
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(f"{text[:60]!r} failed: {line!r}")
                return lines

    async def idle(self, seconds: float) -> None:
        self.n += 1
        tag = b"t%d" % self.n
        self.writer.write(tag + b" IDLE\r\n")
        await self.read_line()
        await asyncio.sleep(seconds)
        self.writer.write(b"DONE\r\n")
        while not (await self.read_line()).startswith(tag + b" "):
            pass

    async def close(self) -> None:
        self.writer.close()


def start_server(env: dict, workers: int = 1) -> tuple[subprocess.Popen, int]:
    # BENCH_PROFILE=/path: run the server under cProfile and write its stats there.
    profile = ["-m", "cProfile", "-o", env["BENCH_PROFILE"]] if env.get("BENCH_PROFILE") else []
    proc = subprocess.Popen(
        [
            sys.executable,
            *profile,
            str(REPO / "manage.py"),
            "imapd",
            "--imap-port",
            "auto",
            "--imaps-port",
            "0",
            "--workers",
            str(workers),
        ],  # fmt: skip
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=REPO,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        m = re.match(r"imap listening on 127\.0\.0\.1:(\d+)", line)
        if m:
            threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep draining
            return proc, int(m.group(1))
        if not line:
            break
    proc.kill()
    raise SystemExit("imapd did not start")


class RssSampler(threading.Thread):
    """RSS and CPU of the server: the process and (with --workers) its worker children."""

    def __init__(self, pid: int) -> None:
        import psutil

        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.stopping = threading.Event()

    def tree(self) -> list:
        return [self.process, *self.process.children()]

    def rss(self) -> int:
        return sum(p.memory_info().rss for p in self.tree())

    def cpu_seconds(self) -> float:
        return sum(sum(p.cpu_times()[:2]) for p in self.tree())

    def current_mb(self) -> float:
        return self.rss() / 1024 / 1024

    def run(self) -> None:
        while not self.stopping.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.05)


def populate(count: int, messages: int) -> list[str]:
    from mailhost import store

    addresses = []
    for c in range(count):
        address = f"load{c}@bench.test"
        account = fresh_account(address, PASSWORD)
        items = [store.AppendItem(message(i, 2048 + (i % 7) * 1024)) for i in range(messages)]
        for i in range(0, len(items), 500):
            store.append_many(account.id, "INBOX", items[i : i + 500])
        addresses.append(address)
    return addresses


MIX = [  # (name, weight)
    ("FETCH FLAGS", 20),
    ("FETCH headers", 18),
    ("FETCH BODY[]", 14),
    ("STORE", 14),
    ("SEARCH", 10),
    ("SELECT", 6),
    ("APPEND", 6),
    ("EXPUNGE", 4),
    ("NOOP", 4),
    ("IDLE", 4),
]


async def load_client(port: int, address: str, until: float, lat: dict, rng: random.Random):
    c = Client()
    await c.connect(port)
    await c.command(b'LOGIN %s "%s"' % (address.encode(), PASSWORD.encode()))
    lines = await c.command(b"SELECT INBOX")
    exists = next(int(x.split()[1]) for x in lines if x.endswith(b"EXISTS\r\n"))
    names = [n for n, _ in MIX]
    weights = [w for _, w in MIX]
    while time.monotonic() < until:
        kind = rng.choices(names, weights)[0]
        n = rng.randint(1, max(exists, 1))
        t0 = time.perf_counter()
        if kind == "FETCH FLAGS":
            await c.command(b"UID FETCH 1:* (FLAGS)")
        elif kind == "FETCH headers":
            lo = max(1, exists - 19)
            await c.command(
                b"FETCH %d:%d (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT "
                b"DATE MESSAGE-ID)])" % (lo, max(exists, 1))
            )
        elif kind == "FETCH BODY[]":
            await c.command(b"FETCH %d (BODY.PEEK[])" % n)
        elif kind == "STORE":
            await c.command(b"STORE %d %sFLAGS (\\Seen)" % (n, rng.choice([b"+", b"-"])))
        elif kind == "SEARCH":
            await c.command(rng.choice([b"UID SEARCH UNSEEN", b"UID SEARCH SUBJECT message"]))
        elif kind == "SELECT":
            lines = await c.command(b"SELECT INBOX")
            exists = next(int(x.split()[1]) for x in lines if x.endswith(b"EXISTS\r\n"))
        elif kind == "APPEND":
            lines = await c.command(b"APPEND INBOX (\\Deleted)", message(rng.randint(0, 10**6)))
            exists += sum(1 for x in lines if x.endswith(b"EXISTS\r\n")) and 1
        elif kind == "EXPUNGE":
            lines = await c.command(b"EXPUNGE")
            exists -= sum(1 for x in lines if x.endswith(b"EXPUNGE\r\n"))
        elif kind == "NOOP":
            await c.command(b"NOOP")
        elif kind == "IDLE":
            await c.idle(0.05)
        lat[kind].append((time.perf_counter() - t0) * 1000)
    await c.command(b"LOGOUT")
    await c.close()


async def run_load(port: int, addresses: list[str], seconds: float) -> dict:
    lat: dict = defaultdict(list)
    until = time.monotonic() + seconds
    await asyncio.gather(
        *(load_client(port, a, until, lat, random.Random(i)) for i, a in enumerate(addresses))
    )
    return lat


def populate_big(count: int) -> str:
    """A `count`-message INBOX: 1,000 parsed messages via the store, then their rows cloned
    (same content, new UIDs) to reach `count` quickly. Search still reads every row."""
    from django.db import transaction
    from django.db.models import F

    from mailhost import store
    from mailhost.models import Account, Content, Mailbox, Message

    address = "big@bench.test"
    account = fresh_account(address, PASSWORD)
    distinct = min(count, 1000)
    items = [store.AppendItem(message(i, 2048)) for i in range(distinct)]
    for i in range(0, distinct, 500):
        store.append_many(account.id, "INBOX", items[i : i + 500])
    box = Mailbox.objects.get(account=account, name="INBOX")
    rows = list(Message.objects.filter(mailbox=box).order_by("uid").values())
    with transaction.atomic():
        next_uid = box.uidnext
        new = []
        for k in range(count - distinct):
            r = rows[k % distinct]
            new.append(Message(mailbox=box, uid=next_uid + k, modseq=box.highestmodseq,
                               flags=(k % 3 == 0), keywords="", internaldate=r["internaldate"],
                               size=r["size"], content_id=r["content_id"]))  # fmt: skip
        Message.objects.bulk_create(new, batch_size=2000)
        Mailbox.objects.filter(id=box.id).update(uidnext=next_uid + len(new))
        per_content = (count - distinct) // distinct
        Content.objects.filter(id__in=[r["content_id"] for r in rows]).update(
            refcount=F("refcount") + per_content
        )
        Account.objects.filter(id=account.id).update(used_bytes=F("used_bytes"))
    return address


async def time_big(port: int, address: str) -> list[list]:
    c = Client()
    await c.connect(port)
    await c.command(b'LOGIN %s "%s"' % (address.encode(), PASSWORD.encode()))
    out = []
    for label, cmd in [
        ("SELECT INBOX", b"SELECT INBOX"),
        ("UID FETCH 1:* (FLAGS)", b"UID FETCH 1:* (FLAGS)"),
        ("UID SEARCH SUBJECT x", b'UID SEARCH SUBJECT "message 777"'),
        ("UID SEARCH SUBJECT (no match)", b"UID SEARCH SUBJECT zzzz"),
        ("UID SEARCH UNSEEN", b"UID SEARCH UNSEEN"),
    ]:
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            lines = await c.command(cmd)
            times.append((time.perf_counter() - t0) * 1000)
        out.append([label, min(times), sorted(times)[1], len(lines) - 1])
    await c.command(b"LOGOUT")
    await c.close()
    return out


async def idle_many(port: int, address: str, count: int, sampler: RssSampler) -> list[list]:
    before = sampler.current_mb()
    clients = []
    t0 = time.perf_counter()
    for i in range(0, count, 50):
        batch = [Client() for _ in range(min(50, count - i))]
        await asyncio.gather(*(c.connect(port) for c in batch))
        await asyncio.gather(
            *(c.command(b'LOGIN %s "%s"' % (address.encode(), PASSWORD.encode())) for c in batch)
        )
        await asyncio.gather(*(c.command(b"SELECT INBOX") for c in batch))
        for c in batch:
            c.n += 1
            c.writer.write(b"i IDLE\r\n")
        await asyncio.gather(*(c.read_line() for c in batch))
        clients.extend(batch)
    setup_s = time.perf_counter() - t0
    await asyncio.sleep(1)
    after = sampler.current_mb()
    # One APPEND through the server wakes every IDLE session: time until all saw EXISTS.
    appender = Client()
    await appender.connect(port)
    await appender.command(b'LOGIN %s "%s"' % (address.encode(), PASSWORD.encode()))
    t1 = time.perf_counter()
    await appender.command(b"APPEND INBOX", message(1))
    fanout = 0.0
    try:
        await asyncio.wait_for(asyncio.gather(*(c.read_line() for c in clients)), timeout=30)
        fanout = (time.perf_counter() - t1) * 1000
    except TimeoutError:
        fanout = float("nan")
    for c in clients:
        c.writer.close()
    return [[count, before, after, after - before, setup_s, fanout]]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--messages", type=int, default=200)
    ap.add_argument("--big", type=int, default=100_000)
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--skip-big", action="store_true")
    ap.add_argument("--skip-idle", action="store_true")
    ap.add_argument("--workers", type=int, default=1, help="imapd --workers (PostgreSQL+Redis)")
    args = ap.parse_args()
    args.clients = min(args.clients, 500)
    args.seconds = min(args.seconds, 120)
    args.idle = min(args.idle, 5000)
    setup_django()
    db = database_label()
    env = dict(os.environ)
    env.update(
        BUZON_ALLOW_PLAINTEXT_AUTH="true",
        BUZON_IMAP_CONNECTIONS_PER_IP="0",
        BUZON_IMAP_COMMANDS_PER_SECOND="0",
        BUZON_AUTH_FAILURE_DELAY="0",
        BUZON_AUTH_MAX_FAILURES="0",
        PYTHONPATH=str(REPO),
    )
    print(f"database: {db}; populating {args.clients} accounts x {args.messages} messages...")
    addresses = populate(args.clients, args.messages)
    proc, port = start_server(env, args.workers)
    sampler = RssSampler(proc.pid)
    sampler.start()
    spy = None
    if env.get("BENCH_PYSPY"):
        # BENCH_PYSPY=/path (.svg flame graph, or .txt for collapsed stacks): sample every
        # thread of the server with py-spy (pip install py-spy) during the mix.
        out = env["BENCH_PYSPY"]
        # BENCH_PYSPY_OPTS: py-spy options (default --idle; --gil shows who holds the GIL).
        fmt = ["--format", "raw"] if out.endswith(".txt") else []
        opts = env.get("BENCH_PYSPY_OPTS", "--idle").split()
        spy = subprocess.Popen(
            [str(Path(sys.executable).with_name("py-spy")), "record", "--threads", *opts,
             "--pid", str(proc.pid), "--duration", str(int(args.seconds)), "-o", out, *fmt,
             *(["--subprocesses"] if args.workers > 1 else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        t0 = time.perf_counter()
        cpu0 = sampler.cpu_seconds()
        client_cpu0 = time.process_time()
        lat = asyncio.run(run_load(port, addresses, args.seconds))
        elapsed = time.perf_counter() - t0
        server_cpu = (sampler.cpu_seconds() - cpu0) / elapsed * 100
        client_cpu = (time.process_time() - client_cpu0) / elapsed * 100
        total = sum(len(v) for v in lat.values())
        rows = []
        for name, _ in MIX:
            p50, p99 = stats(lat[name])
            rows.append([name, len(lat[name]), p50, p99])
        print()
        print(table(
            f"IMAP mix, {args.clients} clients, {elapsed:.0f}s, {db}, {args.workers} worker(s): "
            f"{total / elapsed:,.0f} "
            f"commands/s, server peak RSS {sampler.peak / 2**20:.0f} MB, server CPU "
            f"{server_cpu:.0f}% ({server_cpu * elapsed * 10 / max(total, 1):.2f} ms per command), "
            f"load-generator CPU {client_cpu:.0f}%",
            ["command", "count", "p50 ms", "p99 ms"],
            rows,
        ))  # fmt: skip
        if spy is not None:
            spy.wait(timeout=60)
        if not args.skip_big:
            print(f"\npopulating a {args.big:,}-message mailbox...")
            big = populate_big(args.big)
            rows = asyncio.run(time_big(port, big))
            print(table(
                f"{args.big:,}-message mailbox, {db}",
                ["command", "best ms", "median ms", "response lines"],
                rows,
            ))  # fmt: skip
        if not args.skip_idle:
            rows = asyncio.run(idle_many(port, addresses[0], args.idle, sampler))
            print()
            print(table(
                f"IDLE sessions, {db}",
                ["sessions", "RSS before MB", "RSS after MB", "added MB", "setup s",
                 "EXISTS to all ms"],
                rows,
            ))  # fmt: skip
        print(f"\nserver peak RSS: {sampler.peak / 2**20:.0f} MB")
    finally:
        sampler.stopping.set()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
