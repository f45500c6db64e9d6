"""SMTP load: C clients send N messages of SIZE bytes; prints messages/s, p50/p99 per
transaction and peak RSS.

    .venv/bin/python bench/smtp_load.py HOST PORT --clients C --messages N --size BYTES \
        [--auth USER:PASSWORD] [--to ADDRESS] [--from ADDRESS] [--server-pid PID] [--idle K]
    .venv/bin/python bench/smtp_load.py --serve [--clients C --messages N --size BYTES] [--auth]

HOST PORT: a running server (a 250 after DATA means committed to the recipients' INBOX).
--serve: set up a throw-away data dir and account on DATABASE_URL (default SQLite), start
`manage.py smtpd` on free loopback ports, load it, check every message reached the INBOX,
and report the server's peak RSS, plus what K idle connections add (--idle, default 500).
With --auth the load goes to the submission port (STARTTLS + AUTH PLAIN).
Bounded in count and time (--seconds); loopback only.
"""

from __future__ import annotations

import argparse
import os
import re
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, message, peak_rss_mb, stats, table  # noqa: E402

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def server_rss_mb(pid: int | None) -> float | None:
    if not pid:
        return None
    import psutil

    return psutil.Process(pid).memory_info().rss / 1024 / 1024


def run_load(args, host: str, port: int, server_pid: int | None) -> dict:
    per_client = max(1, args.messages // args.clients)
    deadline = time.monotonic() + args.seconds
    latencies: list[list[float]] = [[] for _ in range(args.clients)]
    errors: list[str] = []
    peak_server = [server_rss_mb(server_pid) or 0.0]
    user, _, password = (args.auth or "").partition(":")
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE

    def client(n: int) -> None:
        try:
            with smtplib.SMTP(host, port, timeout=30) as c:
                c.ehlo("bench.client")
                if args.auth:
                    c.starttls(context=context)
                    c.ehlo("bench.client")
                    c.login(user, password)
                for i in range(per_client):
                    if time.monotonic() > deadline:
                        break
                    raw = message(n * per_client + i, args.size)
                    if args.auth:
                        raw = raw.replace(b"bench@example.org", args.sender.encode(), 1)
                    t0 = time.perf_counter()
                    refused = c.sendmail(args.sender, [args.to], raw)
                    latencies[n].append((time.perf_counter() - t0) * 1000)
                    if refused:
                        errors.append(str(refused))
        except (OSError, smtplib.SMTPException) as e:
            errors.append(f"client {n}: {e}")

    def sample() -> None:
        while not done.is_set():
            if (rss := server_rss_mb(server_pid)) is not None:
                peak_server[0] = max(peak_server[0], rss)
            done.wait(0.2)

    done = threading.Event()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    done.set()
    flat = [x for lat in latencies for x in lat]
    p50, p99 = stats(flat)
    return {
        "sent": len(flat),
        "elapsed": elapsed,
        "rate": len(flat) / elapsed if elapsed else 0.0,
        "p50": p50,
        "p99": p99,
        "server_peak": peak_server[0],
        "errors": errors,
    }


def idle_cost(host: str, port: int, count: int, server_pid: int | None) -> float | None:
    """Server RSS growth with `count` idle connections (each past the greeting)."""
    if not server_pid or not count:
        return None
    before = server_rss_mb(server_pid)
    socks = []
    try:
        for _ in range(count):
            s = socket.create_connection((host, port), timeout=10)
            s.recv(512)
            socks.append(s)
        time.sleep(1.0)
        after = server_rss_mb(server_pid)
    finally:
        for s in socks:
            s.close()
    return after - before


def serve(args):
    """Start `manage.py smtpd` on a fresh data dir; return (proc, ports, env)."""
    import tempfile

    env = dict(os.environ)
    env.setdefault("BUZON_DATA_DIR", tempfile.mkdtemp(prefix="buzon-smtp-bench-"))
    env.update(
        DJANGO_SETTINGS_MODULE="mailhost.settings",
        BUZON_FAST_HASHER="1",
        BUZON_LOG_LEVEL="WARNING",
        BUZON_SMTP_VERIFY="false",  # no SPF/DKIM/DMARC DNS lookups from a bench
        BUZON_SEND_RATE_PER_HOUR="0",
        BUZON_SMTP_MAX_CONNECTIONS_PER_IP=str(max(100, args.idle + args.clients + 10)),
        BUZON_HOSTNAME="mx.bench.test",
    )
    os.environ.update({k: env[k] for k in ("BUZON_DATA_DIR", "BUZON_FAST_HASHER")})
    from bench.common import fresh_account, setup_django

    setup_django()
    account = fresh_account(args.to, "bench-password")
    manage = [sys.executable, str(REPO / "manage.py"), "smtpd", "--no-queue"]
    ports = ["--smtp-port", "auto", "--submission-port", "auto"]
    ports += ["--submissions-port", "0", "--lmtp-port", "0"]
    proc = subprocess.Popen(
        manage + ports, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=REPO
    )
    found: dict[str, int] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(found) < 2:
        line = proc.stdout.readline().decode()
        if not line:
            break
        if m := re.match(r"^(\w+) listening on [\d.]+:(\d+)", line):
            found[m.group(1)] = int(m.group(2))
    if len(found) < 2:
        proc.kill()
        raise SystemExit("smtpd did not start")
    return proc, found, account


def inbox_count(account_id: int) -> int:
    from mailhost import store

    box = store.lookup_mailbox(account_id, "INBOX")
    return len(store.message_uids(account_id, box.id))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("host", nargs="?")
    p.add_argument("port", nargs="?", type=int)
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--auth", nargs="?", const="user@bench.test:bench-password", default=None)
    p.add_argument("--to", default="user@bench.test")
    p.add_argument("--from", dest="sender", default="bench@example.org")
    p.add_argument("--server-pid", type=int)
    p.add_argument("--idle", type=int, default=500)
    p.add_argument("--seconds", type=float, default=120)
    p.add_argument("--serve", action="store_true", help="start a local smtpd to measure")
    args = p.parse_args()
    args.clients = max(1, min(args.clients, 200))
    args.messages = max(1, min(args.messages, 100_000))
    args.idle = max(0, min(args.idle, 2000))
    if args.auth and args.sender == "bench@example.org":
        args.sender = args.auth.partition(":")[0]
    proc = account = None
    if args.serve:
        proc, ports, account = serve(args)
        host, pid = "127.0.0.1", proc.pid
        port = ports["submission"] if args.auth else ports["smtp"]
        before = inbox_count(account.id)
    else:
        if not args.host or not args.port:
            p.error("HOST PORT, or --serve")
        if args.host not in LOOPBACK:
            p.error("loopback only: this tool must not load other machines")
        host, port, pid = args.host, args.port, args.server_pid
    try:
        result = run_load(args, host, port, pid)
        idle = idle_cost(host, port, args.idle, pid)
        stored = inbox_count(account.id) - before if account is not None else None
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
    label = "submission (STARTTLS+AUTH)" if args.auth else "MX"
    db = os.environ.get("DATABASE_URL", "sqlite").split(":")[0]
    row = [
        f"{label}, {args.clients} clients",
        result["sent"],
        result["rate"],
        result["p50"],
        result["p99"],
        result["server_peak"] or "-",
        "-" if idle is None else idle,
    ]
    print(
        table(
            f"SMTP load ({db}, {args.size} B messages, {port})",
            ["what", "msgs", "msg/s", "p50 ms", "p99 ms", "server RSS MB", f"+{args.idle} idle MB"],
            [row],
        )
    )
    print(f"bench client peak RSS: {peak_rss_mb():.0f} MB")
    if stored is not None:
        print(f"committed to INBOX: {stored} of {result['sent']} acknowledged")
    if result["errors"]:
        print(f"errors ({len(result['errors'])}): {result['errors'][:3]}")


if __name__ == "__main__":
    main()
