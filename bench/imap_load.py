"""IMAP load: C clients doing a realistic mix, a 100,000-message mailbox, 1,000 IDLE sessions.

    .venv/bin/python bench/imap_load.py [--clients 50] [--seconds 20] [--messages 200]
        [--big 100000] [--idle 1000] [--skip-big] [--skip-idle] [--no-uvloop]

The server is `manage.py imapd` in a child process (as production runs it), so the client
load does not share its interpreter; its peak RSS is sampled with psutil. Clients are
asyncio raw-protocol clients on 127.0.0.1 that read responses in bulk (the load generator
shares the machine's cores with the server, so it must stay cheap per command); their event
loop is uvloop when it is importable (--no-uvloop: asyncio's). Uses DATABASE_URL (default:
SQLite in a throw-away data dir). Every loop is bounded in count and in time.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
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
    vacuum_analyze,
)

PASSWORD = "bench-password"
BIG = "big@bench.test"
# A literal's announcement ends its line: `{123}` CRLF, then 123 bytes of anything.
_LITERAL = re.compile(rb"\{(\d{1,20})\}\r\n")
# Longer than any marker the scans look for (a literal's announcement, CRLF + tag + SP): when
# none is found, a scan resumes this far back from the end of the data it had.
_MARGIN = 64


def scan_response(buf: bytes | bytearray, tag_sp: bytes, scan: int = 0) -> tuple[int, int]:
    """Find the end of the response at the start of buf: the end of its line that starts
    with `tag_sp` (tag + SP). A line starts at 0 or after a CRLF outside a literal; literals
    ({n} CRLF, then n bytes) are skipped whole, so their content may look like anything.

    `scan` is where to resume: 0 at first, else a position outside any literal. Returns
    (end, scan): end is just past the tagged line's CRLF, or -1 if the response is not all
    in buf yet; then call again with the returned scan once more data is in buf. The Python
    work is a few searches per call and per literal, not per line."""
    n = len(buf)
    crlf_tag = b"\r\n" + tag_sp
    while scan <= n:
        if scan == 0 and buf.startswith(tag_sp):
            line = 0
        else:
            t = buf.find(crlf_tag, scan)
            # A literal announced before the candidate (whose CRLF may end the announcement).
            m = _LITERAL.search(buf, scan, t + 2 if t >= 0 else n)
            if m is not None:
                scan = m.end() + int(m.group(1))
                continue
            if t < 0:
                return -1, max(scan, n - _MARGIN)
            line = t + 2
        eol = buf.find(b"\r\n", line + len(tag_sp))
        if eol < 0:
            return -1, max(line - 2, 0)
        return eol + 2, 0
    return -1, scan  # inside a literal that has not all arrived


def scan_line(buf: bytes | bytearray, scan: int = 0) -> tuple[int, int]:
    """scan_response for the line that starts at `scan` (at first; its literals included)."""
    n = len(buf)
    while scan <= n:
        eol = buf.find(b"\r\n", scan)
        m = _LITERAL.search(buf, scan, eol + 2 if eol >= 0 else n)
        if m is not None:
            scan = m.end() + int(m.group(1))
            continue
        if eol < 0:
            return -1, max(scan, n - _MARGIN)
        return eol + 2, 0
    return -1, scan


def response_lines(resp: bytes) -> list[bytes]:
    """A response's lines, each with its CRLF and with its literals inside it."""
    if _LITERAL.search(resp) is None:
        return [line + b"\r\n" for line in resp.split(b"\r\n")[:-1]]
    lines = []
    start = 0
    while start < len(resp):
        end, _ = scan_line(resp, start)
        if end < 0:
            raise ValueError(f"incomplete line in {resp[start : start + 60]!r}")
        lines.append(resp[start:end])
        start = end
    return lines


def count_exists(resp: bytes) -> int:
    return sum(1 for x in response_lines(resp) if x.endswith(b"EXISTS\r\n"))


def first_exists(resp: bytes) -> int:
    return next(int(x.split()[1]) for x in response_lines(resp) if x.endswith(b"EXISTS\r\n"))


class Client:
    """A minimal IMAP client: one command at a time, whole responses with literals.

    Responses are read in bulk into a buffer and delimited by scan_response (the tagged
    line, literals skipped), so a 200-line answer costs a few searches, not 200 readline
    calls. command() returns the raw response; response_lines() splits it when needed."""

    def __init__(self) -> None:
        self.n = 0
        self.buf: bytes | bytearray = b""  # received, not yet returned

    async def connect(self, port: int) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        await self.read_line()

    async def _fill(self) -> None:
        data = await self.reader.read(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        if not self.buf:
            self.buf = data  # usually the whole response: no copy
        else:
            if isinstance(self.buf, bytes):
                self.buf = bytearray(self.buf)
            self.buf += data

    def _take(self, end: int) -> bytes:
        buf = self.buf
        if end == len(buf):
            self.buf = b""
            return bytes(buf) if isinstance(buf, bytearray) else buf
        self.buf = buf[end:]
        return bytes(buf[:end])

    async def read_line(self) -> bytes:
        """One line (with its literals), e.g. a continuation or an untagged IDLE update."""
        end, scan = scan_line(self.buf) if self.buf else (-1, 0)
        while end < 0:
            await self._fill()
            end, scan = scan_line(self.buf, scan)
        return self._take(end)

    async def read_response(self, tag: bytes) -> bytes:
        """Everything up to and including the line tagged `tag`."""
        tag_sp = tag + b" "
        end, scan = scan_response(self.buf, tag_sp) if self.buf else (-1, 0)
        while end < 0:
            await self._fill()
            end, scan = scan_response(self.buf, tag_sp, scan)
        return self._take(end)

    async def command(self, text: bytes, literal: bytes | None = None) -> bytes:
        """Send a command; return its whole response (raw), raise unless tagged OK."""
        self.n += 1
        tag = b"t%d" % self.n
        if literal is None:
            self.writer.write(tag + b" " + text + b"\r\n")
        else:
            self.writer.write(b"%s %s {%d+}\r\n%s\r\n" % (tag, text, len(literal), literal))
        resp = await self.read_response(tag)
        i = resp.rfind(b"\r\n", 0, len(resp) - 2)  # before the tagged line (it has no literal)
        line = resp[i + 2 :] if i >= 0 else resp
        if not line.startswith(tag + b" OK"):
            raise RuntimeError(f"{text[:60]!r} failed: {line!r}")
        return resp

    async def idle(self, seconds: float) -> None:
        self.n += 1
        tag = b"t%d" % self.n
        self.writer.write(tag + b" IDLE\r\n")
        await self.read_line()
        await asyncio.sleep(seconds)
        self.writer.write(b"DONE\r\n")
        await self.read_response(tag)  # any untagged updates, then the tagged line

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
        return sum(self.cpu_split())

    def cpu_split(self) -> tuple[float, float]:
        """(user, system) CPU seconds of the server and its workers."""
        times = [p.cpu_times() for p in self.tree()]
        return sum(t.user for t in times), sum(t.system for t in times)

    def current_mb(self) -> float:
        return self.rss() / 1024 / 1024

    def run(self) -> None:
        import psutil

        # Listing the children scans /proc (~1-2 ms, in the load generator's process, which
        # shares the cores with the server): every 20th sample only; RSS itself is cheap.
        tick = 0
        while not self.stopping.is_set():
            if tick % 20 == 0:
                procs = self.tree()
            tick += 1
            try:
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs))
            except psutil.NoSuchProcess:  # a worker went away: list them again
                tick = 0
                continue
            time.sleep(0.05)


def service_cpu() -> dict[str, float]:
    """CPU seconds of the database and Redis servers on this machine, by program name
    (their share of the 2 cores is part of what the mix costs)."""
    import psutil

    out = {"postgres": 0.0, "redis-server": 0.0}
    for p in psutil.process_iter(["name", "cpu_times"]):
        if p.info["name"] in out and p.info["cpu_times"] is not None:
            out[p.info["name"]] += p.info["cpu_times"].user + p.info["cpu_times"].system
    return out


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
    exists = first_exists(await c.command(b"SELECT INBOX"))
    names = [n for n, _ in MIX]
    cum_weights = list(itertools.accumulate(w for _, w in MIX))  # what choices(weights) does
    while time.monotonic() < until:
        kind = rng.choices(names, cum_weights=cum_weights)[0]
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
            exists = first_exists(await c.command(b"SELECT INBOX"))
        elif kind == "APPEND":
            resp = await c.command(b"APPEND INBOX (\\Deleted)", message(rng.randint(0, 10**6)))
            exists += count_exists(resp) and 1
        elif kind == "EXPUNGE":
            lines = response_lines(await c.command(b"EXPUNGE"))
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

    address = BIG
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
            resp = await c.command(cmd)
            times.append((time.perf_counter() - t0) * 1000)
        out.append([label, min(times), sorted(times)[1], len(response_lines(resp)) - 1])
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


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def run_clients(use_uvloop: bool, coro):
    """asyncio.run, on a uvloop event loop if asked."""
    if not use_uvloop:
        return asyncio.run(coro)
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


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
    ap.add_argument("--uvloop", action=argparse.BooleanOptionalAction, default=_has_uvloop(),
                    help="run the clients on uvloop (default: when it is importable)")  # fmt: skip
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
    loop = "uvloop" if args.uvloop else "asyncio"
    print(f"database: {db}, client loop: {loop}; populating {args.clients} accounts x "
          f"{args.messages} messages...")  # fmt: skip
    from mailhost.models import Account

    Account.objects.filter(address=BIG).delete()  # a past run's: each run starts alike
    addresses = populate(args.clients, args.messages)
    vacuum_analyze()
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
        user0, sys0 = sampler.cpu_split()
        client_cpu0 = time.process_time()
        services0 = service_cpu()
        lat = run_clients(args.uvloop, run_load(port, addresses, args.seconds))
        elapsed = time.perf_counter() - t0
        server_cpu = (sampler.cpu_seconds() - cpu0) / elapsed * 100
        user1, sys1 = sampler.cpu_split()
        split = f"user {(user1 - user0) / elapsed:.0%}, system {(sys1 - sys0) / elapsed:.0%}"
        client_cpu = (time.process_time() - client_cpu0) / elapsed * 100
        total = sum(len(v) for v in lat.values())
        services = [
            f"{name} CPU {(used - services0[name]) / elapsed:.0%} "
            f"({(used - services0[name]) * 1000 / max(total, 1):.2f} ms per command)"
            for name, used in service_cpu().items()
            if used - services0[name] > 0.01 * elapsed
        ]
        rows = []
        for name, _ in MIX:
            p50, p99 = stats(lat[name])
            rows.append([name, len(lat[name]), p50, p99])
        print()
        print(table(
            f"IMAP mix, {args.clients} clients, {elapsed:.0f}s, {db}, {args.workers} worker(s): "
            f"{total / elapsed:,.0f} "
            f"commands/s, server peak RSS {sampler.peak / 2**20:.0f} MB, server CPU "
            f"{server_cpu:.0f}% ({split}; "
            f"{server_cpu * elapsed * 10 / max(total, 1):.2f} ms per command), "
            f"load-generator CPU {client_cpu:.0f}% "
            f"({client_cpu * elapsed * 10 / max(total, 1):.3f} ms per command)"
            + "".join(f", {line}" for line in services),
            ["command", "count", "p50 ms", "p99 ms"],
            rows,
        ))  # fmt: skip
        if spy is not None:
            spy.wait(timeout=60)
        if not args.skip_big:
            print(f"\npopulating a {args.big:,}-message mailbox...")
            big = populate_big(args.big)
            vacuum_analyze()
            rows = run_clients(args.uvloop, time_big(port, big))
            print(table(
                f"{args.big:,}-message mailbox, {db}",
                ["command", "best ms", "median ms", "response lines"],
                rows,
            ))  # fmt: skip
        if not args.skip_idle:
            rows = run_clients(args.uvloop, idle_many(port, addresses[0], args.idle, sampler))
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
